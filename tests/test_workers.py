"""ui.workers: a training's worker process runs at a lower CPU priority than the server, every thread of it; the
spare is stopped on request."""
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


@pytest.mark.slow
def test_discard_stops_the_spare_and_take_then_starts_a_fresh_worker(monkeypatch):
    monkeypatch.setattr(workers, "ENABLED", True)
    monkeypatch.setattr(workers, "_spare", None)
    workers.keep_ready()
    spare = workers._spare
    assert workers.spare_pid() == spare.pid
    workers.discard()
    assert spare.poll() == 0 and workers.spare_pid() is None  # it read an empty request and exited cleanly
    workers.discard()  # none left: nothing to do
    fresh = workers.take()
    try:
        assert fresh.pid != spare.pid and '"ready"' in fresh.stdout.readline()
    finally:
        fresh.stdin.close()
        fresh.wait(60)
