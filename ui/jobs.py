"""Long computations in background threads, shared by all sessions and kept when a page is left.

A job reports its progress (done, total) and watches a stop event; pages poll it. Results stay
in the registry (a bounded LRU) so a page switch, a second browser tab or another user asking
the same question gets the answer at once. Job threads never call Streamlit.

A heavy job started from a page remembers the browser sessions that asked for it (or found it on their
page); once none of them is active (every such tab closed) for VAE_LAB_ABANDON_SECONDS, it is cancelled.
A job the server started on its own (the default answers, at start-up) runs to its end.

Heavy jobs (estimates, integrals, AIS, q*) pass a `Gate`: at most VAE_LAB_MAX_JOBS of them compute
at once (default 2, one per core of Streamlit Community Cloud's container); the others wait their
turn, first come first served, and say their place in the queue. So several visitors' questions
share the cores in turn instead of slowing each other all together, and the pages stay responsive.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from collections import OrderedDict
from typing import Any
from collections.abc import Callable, Hashable

from . import memory, priority

MAX_FINISHED = 48
MAX_RUNNING = int(os.environ.get("VAE_LAB_MAX_JOBS", "2"))
ABANDON_SECONDS = float(os.environ.get("VAE_LAB_ABANDON_SECONDS", "60"))


class Gate:
    """At most `size` jobs past it at once; the others wait in arrival order."""

    def __init__(self, size: int = MAX_RUNNING):
        self.size = max(1, size)
        self._cv = threading.Condition()
        self._inside: set = set()
        self._waiting: list = []

    def enter(self, job: Job) -> bool:
        """Wait for the job's turn; False if it was stopped while waiting."""
        with self._cv:
            self._waiting.append(job)
            while not job.stop.is_set() and not (self._waiting[0] is job and len(self._inside) < self.size):
                self._cv.wait(0.5)
            self._waiting.remove(job)
            if not job.stop.is_set():
                self._inside.add(job)
            self._cv.notify_all()
            return not job.stop.is_set()

    def leave(self, job: Job):
        with self._cv:
            self._inside.discard(job)
            self._cv.notify_all()

    def place(self, job: Job) -> int:
        """1 for the next to go in, 2 behind it, …; 0 once inside (or never queued)."""
        with self._cv:
            return self._waiting.index(job) + 1 if job in self._waiting else 0


class Job:
    def __init__(self, key: Hashable, fn: Callable[[Job], Any], label: str = "", gate: Gate | None = None):
        self.key, self.label, self.gate = key, label, gate
        self.done, self.total = 0, 1
        self.reported = False  # no progress yet: its total is not known
        self.result: Any = None
        self.error: BaseException | None = None
        self.error_text = ""
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.started = time.perf_counter()
        self.seconds = 0.0
        self.sessions: set[str] | None = None  # the browser sessions that asked for it (None: the server's own)
        self.unwatched_since: float | None = None  # since when none of them is active
        self._fn = fn
        self._thread = threading.Thread(target=self._run, name=f"vae-lab-job-{label or 'job'}", daemon=True)

    def _run(self):
        inside = False
        try:
            if self.gate is not None:
                inside = self.gate.enter(self)
                if not inside:
                    raise RuntimeError("stopped while it waited its turn")
                self.started = time.perf_counter()  # the ETA counts from here
            priority.lower_this_thread()  # the visitors' page runs first, this job the rest of the cores
            priority.lower_compute_pools()
            self.result = self._fn(self)
        except BaseException as e:  # reported to the page, never lost in a thread
            self.error_text = "".join(traceback.format_exception_only(type(e), e)).strip()
            self.error = e.with_traceback(None)  # its frames would keep the model and images alive
        finally:
            if inside:
                self.gate.leave(self)
            # A finished job is kept for its result only: the work's closure holds a model and its test
            # images, which must not outlive the run cache's bounded entries for as long as the job is listed.
            self._fn = None
            self.seconds = time.perf_counter() - self.started
            priority.lower_compute_pools()  # TensorFlow's pools started by this job's first ops, too
            self.finished.set()
            if inside:
                memory.give_back()  # a heavy job's intermediate arrays, freed but kept by the heap

    def report(self, done: int, total: int, *_):
        """Matches estimators.estimate_log_px's on_progress(done, total, seconds)."""
        self.done, self.total, self.reported = int(done), max(int(total), 1), True

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total)

    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    @property
    def place(self) -> int:
        """Its place in the queue for the cores (0: computing, or not queued)."""
        return self.gate.place(self) if self.gate is not None and self.running else 0

    @property
    def eta_seconds(self) -> float | None:
        elapsed = time.perf_counter() - self.started
        return elapsed * (self.total - self.done) / self.done if self.done else None

    def cancel(self):
        self.stop.set()


class Jobs:
    """`asker()` names the browser session of the calling script run (None off a script run); `is_active(s)`
    says whether that session's tab is still open. Without them no job is ever cancelled for want of one."""

    def __init__(self, max_finished: int = MAX_FINISHED, max_running: int = MAX_RUNNING,
                 asker: Callable[[], str | None] = lambda: None, is_active: Callable[[str], bool] | None = None,
                 abandon_seconds: float = ABANDON_SECONDS):
        self.gate = Gate(max_running)
        self._lock = threading.Lock()
        self._jobs: OrderedDict[Hashable, Job] = OrderedDict()
        self.max_finished = max_finished
        self.closed = False
        self._asker, self._is_active, self.abandon_seconds = asker, is_active, abandon_seconds
        if is_active is not None:
            threading.Thread(target=self._watch, name="vae-lab-jobs-watch", daemon=True).start()

    def get(self, key: Hashable) -> Job | None:
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                self._jobs.move_to_end(key)
                self._asked(job)
            return job

    def _asked(self, job: Job, new: bool = False):
        """A session asked for the job: a heavy job it started is its, and every session that asks again
        shares it; a job the server started (no session) stays the server's, whoever looks at it."""
        who = self._asker() if job.gate is not None else None
        if who is not None and new:
            job.sessions = {who}
        elif who is not None and job.sessions is not None:
            job.sessions.add(who)

    def _watch(self, every: float = 1.0):
        """Cancel the running jobs whose every asking session has been gone for abandon_seconds."""
        while not self.closed:
            time.sleep(every)
            with self._lock:
                watched = [j for j in self._jobs.values() if j.running and j.sessions]
            now = time.monotonic()
            for job in watched:
                if any(self._is_active(sid) for sid in list(job.sessions)):
                    job.unwatched_since = None
                elif job.unwatched_since is None:
                    job.unwatched_since = now
                elif now - job.unwatched_since >= self.abandon_seconds:
                    job.cancel()

    def start(self, key: Hashable, fn: Callable[[Job], Any], label: str = "", heavy: bool = True) -> Job:
        """The job for `key`: the existing one (running or finished), else a new one, started now (a heavy one
        computes when the gate lets it; a light one, which only waits on others, at once)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                self._jobs.move_to_end(key)
                self._asked(job)
                return job
            job = Job(key, fn, label, self.gate if heavy else None)
            self._asked(job, new=True)
            if self.closed:  # the process is exiting: refuse new work
                job.error, job.error_text = RuntimeError("shutting down"), "the server is shutting down"
                job.finished.set()
                return job
            self._jobs[key] = job
            self._evict()
        job._thread.start()
        return job

    def shutdown(self, timeout: float = 30.0):
        """Refuse new jobs, stop every running one and wait for its thread. Registered with atexit: a
        daemon thread still inside TensorFlow when the interpreter tears down aborts the process."""
        with self._lock:
            self.closed = True
        self.stop_all(timeout)

    def stop_all(self, timeout: float = 30.0):
        """Ask every running job to stop and wait (up to timeout) for their threads to finish."""
        with self._lock:
            running = [j for j in self._jobs.values() if j.running]
        for job in running:
            job.cancel()
        deadline = time.perf_counter() + timeout
        for job in running:
            job.finished.wait(max(0.0, deadline - time.perf_counter()))

    def discard(self, key: Hashable):
        """Forget a finished job (to compute it again); a running one is asked to stop."""
        with self._lock:
            job = self._jobs.pop(key, None)
        if job is not None and job.running:
            job.cancel()

    def _evict(self):
        finished = [k for k, j in self._jobs.items() if not j.running]
        for k in finished[: max(0, len(finished) - self.max_finished)]:
            del self._jobs[k]


class TrainingSlots:
    """A counting semaphore with a non-blocking acquire and a readable count: caps concurrent trainings."""

    def __init__(self, size: int):
        self.size, self.used, self._lock = size, 0, threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.used >= self.size:
                return False
            self.used += 1
            return True

    def release(self):
        with self._lock:
            self.used = max(0, self.used - 1)

    @property
    def busy(self) -> bool:
        return self.used >= self.size


class Board:
    """One entry per visitor (their training), shared by every session of the server."""

    def __init__(self):
        self._lock, self._items = threading.Lock(), {}

    def get(self, visitor: str):
        with self._lock:
            return self._items.get(visitor)

    def put(self, visitor: str, item):
        with self._lock:
            self._items[visitor] = item

    def pop(self, visitor: str):
        with self._lock:
            return self._items.pop(visitor, None)

    def values(self) -> list:
        with self._lock:
            return list(self._items.values())

    def items(self) -> list:
        with self._lock:
            return list(self._items.items())
