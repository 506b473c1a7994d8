"""Answers a page waits for without computing them in its script run.

Inside a page's body (links.run_page), an answer or a run that no one has computed yet (ui.cache) is handed to
the server's answer threads, and the script run waits for it. Past WAIT_SECONDS (VAE_LAB_ANSWER_WAIT_S, 1 s:
an answer that quick is drawn as if computed in place) the page shows, where the answer goes, a box that says
what is being computed and for how long (or its place in the queue), redrawn every POLL_SECONDS until the
answer is there; then the box goes and the page goes on.

Why: a script run computing inside TensorFlow cannot be stopped, so a visitor who opened a page whose answer
takes a minute (under load: the first visitors of a fresh server) was held there: a click on another page
waited for the computation's end. A script run that waits here redraws the box every POLL_SECONDS, and each
redraw is a point where Streamlit takes a click: the switch is served at once, the computation goes on, at most
THREADS at a time (VAE_LAB_ANSWER_THREADS, 2: the cores of Cloud's container), and its answer is kept for every
visitor (one computation per key, whoever asks). The box is redrawn by the waiting run itself, not by a
fragment's timer: Streamlit folds a timer's rerun into a pending page switch and keeps the timer's page, so a
click on another page would be lost. At most MAX_QUEUED answers wait for a thread; past that a page computes
its answer in its own script run, as it used to. The sidebar and app.py compute in place: only a page's body
defers.
"""
from __future__ import annotations

import contextlib
import contextvars
import itertools
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

POLL_SECONDS = 0.5
MAX_QUEUED = 32
BOX_KEY = "pending-answer"  # the box's container: class st-key-pending-answer-N (the benchmarks find it)


def wait_seconds() -> float:
    """How long a page's script run waits for an answer before it shows the box (inf: every answer is computed
    in the script run itself, as before; the AppTests use it, but for those of the box)."""
    return float(os.environ.get("VAE_LAB_ANSWER_WAIT_S", "1.0"))


def threads() -> int:
    return max(1, int(os.environ.get("VAE_LAB_ANSWER_THREADS", "2")))


@dataclass
class Task:
    future: Future
    label: str
    since: float = field(default_factory=time.monotonic)


_deferring = contextvars.ContextVar("vae_lab_deferring", default=False)
_lock = threading.Lock()
_tasks: dict[Hashable, Task] = {}
_pool: ThreadPoolExecutor | None = None
_boxes = itertools.count()  # each box's key: one run may wait for several answers


@contextlib.contextmanager
def deferring():
    """Within it (a page's body), get() hands an answer to the answer threads instead of computing it here."""
    token = _deferring.set(True)
    try:
        yield
    finally:
        _deferring.reset(token)


def get(key: Hashable, compute: Callable[[], object], label: str):
    """compute()'s value: computed here outside a page's body; inside one, by the answer threads (one task per
    key, whoever asks), with the box past WAIT_SECONDS. compute must not touch Streamlit's script API (it runs
    in a thread of the server's). An exception of compute is raised here, as if computed in place."""
    wait = wait_seconds()
    if not _deferring.get() or math.isinf(wait):
        return compute()
    task = _task(key, compute, label)
    if task is None:  # too many waiting already: compute it here, as before
        return compute()
    try:
        return task.future.result(timeout=max(0.0, wait))
    except FutureTimeout:
        pass
    holder = st.empty()
    with holder.container(key=f"{BOX_KEY}-{next(_boxes)}"):
        line = st.empty()
    try:
        while True:
            line.info(text(task), icon=":material/hourglass_top:")  # also where a click on another page lands
            try:
                return task.future.result(timeout=POLL_SECONDS)
            except FutureTimeout:
                continue
    finally:
        holder.empty()


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
