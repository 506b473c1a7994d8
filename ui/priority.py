"""The server's background work at a lower CPU priority than its page runs (Linux's per-thread nice).

A background job (the shipped runs' default answers, a log p(x) estimate, AIS, q*, BDMC) computes in its own
thread and in TensorFlow's compute pools, which every thread of the server shares. On two cores it takes them
both, and a visitor's page run (a Python thread of Streamlit's) and their browser wait their turn. With the job's
thread and TensorFlow's pool threads niced, the scheduler gives the page runs the cores first and the background
work the rest: it runs as fast as before while nobody is clicking. The training workers are niced the same way
(server.training_nice). A thread's nice can only be raised without privileges, so it is set once and kept.
"""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from . import server

TASKS = Path("/proc/self/task")
POOLS = ("tf_",)  # TensorFlow names its compute pools' threads tf_Compute, tf_XLAEigen, …


def _nice(tid: int, nice: int) -> bool:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or the thread has ended
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        return True
    return False


def lower_this_thread() -> bool:
    """Set the calling thread's nice to server.background_nice() (unless already lower); whether it could."""
    nice = server.background_nice()
    return nice > 0 and _nice(threading.get_native_id(), nice)


def lower_compute_pools() -> int:
    """Lower the priority of TensorFlow's compute threads (those there are by now: its pools start with its
    first op, XLA's with its first compiled call); how many were lowered."""
    nice, lowered = server.background_nice(), 0
    if nice <= 0 or not TASKS.is_dir():
        return 0
    for task in TASKS.iterdir():
        with contextlib.suppress(OSError, ValueError):
            if (task / "comm").read_text().strip().startswith(POOLS):
                lowered += _nice(int(task.name), nice)
    return lowered
