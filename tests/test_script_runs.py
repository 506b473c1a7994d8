"""ui.script_runs: a script run's end leaves Keras's session (and TensorFlow's kernel cache) alone; Streamlit's
full garbage collection after every run is off."""
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
