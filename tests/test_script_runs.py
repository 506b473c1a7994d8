"""ui.script_runs: a script run's end leaves Keras's session (and TensorFlow's kernel cache) alone; Streamlit's
full garbage collection after every run is off; the background work waits for a lull in script runs."""
import threading
import time
import tomllib
from pathlib import Path

import keras
import pytest
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from ui import script_runs

ORIGINAL = script_runner._clean_problem_modules
SCRIPT = "import keras\nimport streamlit as st\nst.write('page')\n"


@pytest.fixture
def clears(monkeypatch):
    """Counts keras.backend.clear_session calls; Streamlit's own end-of-run step restored first."""
    calls = []
    monkeypatch.setattr(script_runner, "_clean_problem_modules", ORIGINAL)
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: calls.append(1))
    return calls


def test_streamlit_by_itself_clears_keras_session_after_every_script_run(clears):
    at = AppTest.from_string(SCRIPT).run()
    at.run()
    assert not at.exception and len(clears) == 2  # what the app leaves out: otherwise the check below proves nothing


def test_after_keep_keras_session_no_script_run_clears_it(clears):
    assert script_runs.keep_keras_session()
    at = AppTest.from_string(SCRIPT).run()
    at.run()
    assert not at.exception and at.markdown[0].value == "page" and clears == []


def test_the_app_turns_off_the_collection_after_each_run():  # app.py's call: tests/test_app.py, the Train page
    repo = Path(__file__).resolve().parent.parent
    config = tomllib.loads((repo / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False


def test_background_work_waits_for_a_lull_in_script_runs():
    stop = threading.Event()
    script_runs.began()
    t = time.monotonic()
    assert script_runs.wait_for_lull(0.5, 30, stop)
    assert 0.45 <= time.monotonic() - t < 10  # not before half a second without a new run


def test_script_runs_without_a_lull_hold_it_back_only_so_long():
    stop, clicking = threading.Event(), threading.Event()

    def visitors():  # a run begins every 50 ms: never a lull of a second
        while not clicking.wait(0.05):
            script_runs.began()

    threading.Thread(target=visitors, daemon=True).start()
    try:
        t = time.monotonic()
        assert script_runs.wait_for_lull(1.0, 0.8, stop)
        assert 0.75 <= time.monotonic() - t < 10
    finally:
        clicking.set()


def test_a_stop_ends_the_wait_for_a_lull():
    stop = threading.Event()
    script_runs.began()
    threading.Timer(0.2, stop.set).start()
    assert not script_runs.wait_for_lull(60, 60, stop)
