"""Streamlit's own floor under issue 16's first-open target: the smallest Streamlit app (a title, a select box
in the sidebar, a line of text) opened by one visitor, then by six at once, in load.py's harness (the same
Visitor, its headless Chromiums on the same two cores as the server, the same "rendered").

What bounds the ratio: one Chromium loading Streamlit's front end keeps more than one core busy (its renderer,
compositor and browser processes), six share two, and each Chromium is a scheduling group of its own (Linux's
autogroups: a niceness set inside the server does not reach across them). This app has no page of its own to
make lighter, so its ratio is what the framework alone gives in this harness; the app's ratio is read beside it.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .app import _start_server, free_port
from .load import _wait_listening, crowd

BARE_APP = '''import streamlit as st

st.title("VAE Lab")
st.sidebar.selectbox("Active run", ["fashion-default"])
st.write("The smallest Streamlit app: what the framework alone costs a first open.")
'''


def first_opens(visitors: int) -> list[float]:
    """Every visitor's first open of the bare app on a fresh server of its own."""
    root, port = Path(tempfile.mkdtemp(prefix="vae_lab_floor_")), free_port()
    script = root / "bare_app.py"
    script.write_text(BARE_APP)
    proc = _start_server(root, port, script=str(script))
    try:
        _wait_listening(port, proc)
        return crowd(f"http://127.0.0.1:{port}/", visitors, (), rounds=0)["first_opens_s"]
    finally:
        proc.kill()
        proc.wait(15)
        shutil.rmtree(root, ignore_errors=True)


def run_floor(res: dict, repeats: int = 2):
    """One visitor, then six, `repeats` times in turn; the means of the one's first open and of the six's
    slowest land in res (load_floor_*)."""
    ones, sixes = [], []
    for _ in range(repeats):
        ones.append(first_opens(1)[0])
        sixes.append(max(first_opens(6)))
    one, six = sum(ones) / repeats, sum(sixes) / repeats
    res.update(load_floor_1_first_open_s=one, load_floor_6_first_open_max_s=six, load_floor_ratio=six / one,
               load_floor_runs=dict(one=ones, six=sixes))
    print("floor: the smallest Streamlit app in the same harness, first open: one visitor "
          + ", ".join(f"{v:.2f}" for v in ones) + " s; the slowest of six " + ", ".join(f"{v:.2f}" for v in sixes)
          + f" s; means {six:.2f} / {one:.2f} s = {six / one:.1f}×\n")
