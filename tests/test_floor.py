"""The floor of the first-open target (benchmarks/floor.py): its app is one the harness can time (a title, as
load.py's "rendered" waits for), and the targets print its ratio beside the app's."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from benchmarks import floor, load


@pytest.mark.app
def test_the_floor_app_has_the_title_the_harness_waits_for():
    at = AppTest.from_string(floor.BARE_APP).run(timeout=30)
    assert not at.exception
    assert [t.value for t in at.title] == ["VAE Lab"]
    assert at.sidebar.selectbox[0].value == "fashion-default"


def test_the_first_open_target_prints_the_floor_beside_it():
    res = dict(load_1_p95_s=1.0, load_6_p95_s=3.0, load_1_first_open_max_s=2.0, load_6_first_open_max_s=9.0,
               load_floor_1_first_open_s=1.25, load_floor_6_first_open_max_s=6.0, load_floor_ratio=4.8,
               load_8_server_alive=True, load_8_oom_kills=0, load_8_peak_mb=2000.0)
    lines = load.target_lines(res)
    assert lines[1].startswith("  slowest first open at 6 visitors") and lines[1].endswith("4.5× NOT met")
    assert lines[2] == "    (the smallest Streamlit app in the same harness: 6.00 s / 1.25 s = 4.8×, floor.py)"
    assert "floor" not in "".join(load.target_lines({k: v for k, v in res.items() if "floor" not in k}))
