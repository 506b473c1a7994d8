"""Training worker processes (`python -m vae_tf.worker`), one kept ready ahead of need.

A worker imports TensorFlow and the library before it reads its request, and says so ("ready"). The
server keeps one such spare: the next training takes it, so a click on Train starts with the data and
the compile instead of the imports (seconds, more on a busy machine), and a new spare is started when
that training has ended (not at once: it would compete with the training's first steps for the cores).
A spare that has died is replaced. A worker runs at a lower CPU priority than the server (server.training_nice):
the visitors' pages first, the training the rest. VAE_LAB_SPARE_WORKER=0 keeps none: an idle spare holds the memory of
an imported TensorFlow. A spare exits when the server does (its stdin closes).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

from . import server

ENABLED = os.environ.get("VAE_LAB_SPARE_WORKER", "1") != "0"
_lock = threading.Lock()
_spare: subprocess.Popen | None = None


def spawn() -> subprocess.Popen:
    env = {**os.environ, "VAE_LAB_WORKER_NICE": str(server.training_nice())}
    return subprocess.Popen([sys.executable, "-m", "vae_tf.worker"], cwd=server.REPO, text=True, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def keep_ready():
    """Start a spare unless one is alive (called by the Train page and when a training ends)."""
    global _spare
    if not ENABLED:
        return
    with _lock:
        if _spare is None or _spare.poll() is not None:
            _spare = spawn()


def take() -> subprocess.Popen:
    """A worker for a training: the spare if one is alive, else a new process."""
    global _spare
    with _lock:
        proc, _spare = _spare, None
    return proc if proc is not None and proc.poll() is None else spawn()


def spare_pid() -> int | None:
    with _lock:
        return _spare.pid if _spare is not None and _spare.poll() is None else None


def discard():
    """Stop the spare, if there is one (the benchmark: a spare's imports are not to be timed with other work)."""
    global _spare
    with _lock:
        proc, _spare = _spare, None
    if proc is not None and proc.poll() is None:
        proc.stdin.close()  # a spare reads an empty request and exits
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
