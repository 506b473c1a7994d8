"""ui.priority: the server's background jobs and TensorFlow's compute threads run niced; page runs do not."""
import os
import subprocess
import sys
import threading

import pytest

from ui import jobs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_job_computes_niced_and_the_thread_that_started_it_keeps_its_priority(monkeypatch):
    monkeypatch.setenv("VAE_LAB_BACKGROUND_NICE", "7")
    before = _nice()
    job = jobs.Job("k", lambda job: _nice(), label="test")
    job._thread.start()
    assert job.finished.wait(10) and job.error is None
    assert job.result == max(before, 7) and _nice() == before


def test_nice_zero_leaves_a_job_as_it_was(monkeypatch):
    monkeypatch.setenv("VAE_LAB_BACKGROUND_NICE", "0")
    job = jobs.Job("k", lambda job: _nice(), label="test")
    job._thread.start()
    assert job.finished.wait(10) and job.result == _nice()


@pytest.mark.slow  # a process that imports TensorFlow: the quick run leaves it out
def test_tensorflows_compute_threads_are_niced_and_the_callers_thread_is_not():
    """In a process of its own: a niced thread cannot be given its priority back."""
    script = """
import os, threading
from pathlib import Path
import tensorflow as tf
from ui import priority
base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
x = tf.random.normal((300, 300))
(x @ x).numpy()
tf.function(lambda a: a @ a, jit_compile=True)(x).numpy()
lowered = priority.lower_compute_pools()
nice = {t.name: ((t / "comm").read_text().strip(), os.getpriority(os.PRIO_PROCESS, int(t.name)))
        for t in Path("/proc/self/task").iterdir()}
pools = [n for name, n in nice.values() if name.startswith("tf_")]
assert lowered == len(pools) > 0 and set(pools) == {max(base, 5)}, nice
assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
"""
    env = {**os.environ, "VAE_LAB_BACKGROUND_NICE": "5", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr[-2000:]
