"""This server's script runs: what Streamlit does at the end of each, trimmed to what this app needs, and when
the last one began, so that the server's own background work can wait for a lull in them.

Streamlit ends every script run with keras.backend.clear_session() once Keras is imported (script_runner.
_clean_problem_modules: for apps that build a model in their script and would otherwise pile up Keras's global
state). With TensorFlow's backend that resets the default graph, clears TensorFlow's eager kernel cache — the
whole process's, while the answer threads and the background jobs compute with it — and runs a full garbage
collection: most of a warm page switch's time (README, Speed). This app builds no model in a script run (a run's
model is loaded once and cached, ui.cache), so the clearing only costs. keep_keras_session() leaves out that one
step and keeps the rest (matplotlib's figures closed). Streamlit's other full collection after each run is off in
.streamlit/config.toml (runner.postScriptGC): Python still collects by its own thresholds, and heavy jobs and
trainings give their memory back when they end (ui.memory).

The default answers the server computes at its launch (ui.prewarm) start once no script run has begun for a moment:
begun there, their imports and compiles held Python's lock and the cores while the launch's first visitors waited
for their first page.
"""
from __future__ import annotations

import sys
import threading
import time

from streamlit.runtime.scriptrunner import script_runner


def _clean_problem_modules() -> None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:  # as Streamlit: a figure that will not close does not fail the page
            pass


def keep_keras_session() -> bool:
    """Once per process, before the first script run ends; whether Streamlit's step was found and replaced."""
    if not callable(getattr(script_runner, "_clean_problem_modules", None)):
        return False  # another Streamlit: nothing to trim
    script_runner._clean_problem_modules = _clean_problem_modules
    return True


_last_began = time.monotonic()


def began():
    """At the top of every script run."""
    global _last_began
    _last_began = time.monotonic()


def wait_for_lull(quiet: float, most: float, stop: threading.Event) -> bool:
    """Block until no script run has begun for `quiet` seconds, or for at most `most` seconds (visitors who
    keep clicking do not hold the background work back for ever); False if `stop` was set meanwhile."""
    t0 = time.monotonic()
    while time.monotonic() - _last_began < quiet and time.monotonic() - t0 < most:
        if stop.wait(0.1):
            return False
    return not stop.is_set()
