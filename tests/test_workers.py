"""ui.workers: a training's worker process runs at a lower CPU priority than the server, every thread of it."""
import os
from pathlib import Path

import pytest

from ui import workers


def niceness(pid: int) -> dict[int, int]:
    """Each thread's nice value (/proc/PID/task/TID/stat: field 19; the name in brackets may hold spaces)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        out[int(task.name)] = int(stat[stat.rindex(")") + 2:].split()[16])
    return out


@pytest.mark.slow
def test_a_worker_and_every_thread_it_starts_run_at_the_training_niceness(monkeypatch):
    monkeypatch.setenv("VAE_LAB_TRAINING_NICE", "7")
    own = os.nice(0)
    proc = workers.spawn()
    try:
        assert '"ready"' in proc.stdout.readline()  # TensorFlow and the library imported: their threads are up
        threads = niceness(proc.pid)
        assert len(threads) > 1 and set(threads.values()) == {min(19, own + 7)}, threads
    finally:
        proc.stdin.close()  # a spare whose server has gone exits
        proc.wait(60)
    assert proc.returncode == 0
