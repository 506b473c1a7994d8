"""Answers a page waits for without holding its script run.

Inside a page's body (links.run_page), an answer or a run that no one has computed yet (ui.cache) is handed to
the server's answer threads, and the script run waits for it at most WAIT_SECONDS (VAE_LAB_ANSWER_WAIT_S, 1 s:
an answer that quick is drawn in the same run, as before). A slower one raises Pending, which ends the page's
body where it is: what was drawn so far stays (title, widgets, the sections before), and a box says what is
being computed and for how long, polled every POLL_SECONDS, until the page reruns with the answer.

Why: a script run blocked inside TensorFlow cannot be stopped, so a visitor who opened a page whose answer
takes a minute (under load: the first visitors of a fresh server) was held there, unable to switch pages, and
every such page held a Streamlit script thread. Now a click on another page is served at once; the computation
goes on, at most THREADS at a time (VAE_LAB_ANSWER_THREADS, 2: the cores of Cloud's container), and its answer
is kept for every visitor (one computation per key, whoever asks). At most MAX_QUEUED answers wait for a
thread; past that a page computes its answer in its own script run, as it used to. The sidebar and app.py
compute inline: only a page's body defers.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import streamlit as st

from .escape import md

POLL_SECONDS = 1.0
MAX_QUEUED = 32
BOX_KEY = "pending-answer"  # the box's container: class st-key-pending-answer in the page (the benchmarks find it)


def wait_seconds() -> float:
    """How long a page's script run waits for an answer before it shows the box instead (inf: it waits for every
    answer, computed in the script run itself, as before; the AppTests, which run no fragment's timer, use it)."""
    return float(os.environ.get("VAE_LAB_ANSWER_WAIT_S", "1.0"))


def threads() -> int:
    return max(1, int(os.environ.get("VAE_LAB_ANSWER_THREADS", "2")))


@dataclass
class Task:
    future: Future
    label: str
    since: float = field(default_factory=time.monotonic)


class Pending(BaseException):
    """An answer is being computed off the script run. A BaseException, as Streamlit's own st.stop() and
    st.rerun() are: a page's `except Exception` around its computations must not swallow it."""

    def __init__(self, task: Task):
        super().__init__(task.label)
        self.task = task


_deferring = contextvars.ContextVar("vae_lab_deferring", default=False)
_lock = threading.Lock()
_tasks: dict[Hashable, Task] = {}
_pool: ThreadPoolExecutor | None = None


@contextlib.contextmanager
def deferring():
    """Within it (a page's body), get() may raise Pending instead of computing in the script run."""
    token = _deferring.set(True)
    try:
        yield
    finally:
        _deferring.reset(token)


def get(key: Hashable, compute: Callable[[], object], label: str):
    """compute()'s value: computed here outside a page's body; inside one, by the answer threads (one task per
    key, whoever asks), waited for WAIT_SECONDS at most, else Pending. compute must not touch Streamlit's script
    API (it runs in a thread of the server's). An exception of compute is raised here, as if computed inline."""
    wait = wait_seconds()
    if not _deferring.get() or math.isinf(wait):
        return compute()
    task = _task(key, compute, label)
    if task is None:  # too many waiting already: compute it here, as before
        return compute()
    try:
        return task.future.result(timeout=max(0.0, wait))
    except FutureTimeout:
        raise Pending(task) from None


def _task(key: Hashable, compute: Callable[[], object], label: str) -> Task | None:
    global _pool
    with _lock:
        task = _tasks.get(key)
        if task is not None:
            return task
        if sum(not t.future.running() for t in _tasks.values()) >= MAX_QUEUED:
            return None
        if _pool is None:
            _pool = ThreadPoolExecutor(threads(), thread_name_prefix="vae-lab-answer")
        task = _tasks[key] = Task(_pool.submit(compute), label)
    task.future.add_done_callback(lambda _f: _forget(key, task))
    return task


def _forget(key: Hashable, task: Task):
    """A finished task leaves the table: its answer is in the cache (or, if it failed, the next ask retries)."""
    with _lock:
        if _tasks.get(key) is task:
            del _tasks[key]


def ahead_of(task: Task) -> int | None:
    """How many answers wait for a thread before this one (None: it is being computed, or done)."""
    if task.future.running() or task.future.done():
        return None
    with _lock:
        waiting = [t for t in _tasks.values() if not t.future.running() and not t.future.done()]
    return sum(t.since < task.since for t in waiting)


def text(task: Task) -> str:
    label = md(task.label.rstrip("…. ") or "Computing this page's answers")
    ahead = ahead_of(task)
    where = (f"{time.monotonic() - task.since:.0f} s so far" if ahead is None else
             "waiting its turn for the server's cores: " + (f"{ahead} other answer{'s' if ahead > 1 else ''} first"
                                                              if ahead else "next"))
    return (f"{label}… ({where}). The rest of this page appears when it is ready; you can switch pages "
            "meanwhile: the computation goes on, and its answer is kept for every visitor.")


def show(p: Pending):
    """Where the page's body stopped: the box, redrawn every POLL_SECONDS; the page reruns once it is done."""
    task = p.task

    @st.fragment(run_every=POLL_SECONDS)
    def box():
        if task.future.done():
            st.rerun()
        with st.container(key=BOX_KEY):
            st.info(text(task), icon=":material/hourglass_top:")
    box()
