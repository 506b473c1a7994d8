"""Shareable links: the view lives in the URL, so a copied link reopens it (as TensorFlow Playground's do).

Every widget that shapes a view (the active run, the next run's hyperparameters, each page's choices)
is created with bind="query-params": Streamlit writes its value into the URL under its key whenever it
differs from the widget's default, and seeds the widget from the URL when it first appears. A value the
widget cannot take (a removed run, a number out of range, an unknown option) is dropped by Streamlit and
the widget keeps its default; `report` says so, so that a stale link does not fail silently.
"""
from __future__ import annotations

import math
import runpy
from pathlib import Path

import streamlit as st

from . import pending
from .escape import md

PENDING = "links.pending"  # {key: [values]}: the opening URL's parameters not yet claimed by a widget
OURS = ("run.", "hp.", "page.")  # key prefixes of the bound widgets (ui/state.py's naming)
IGNORED = frozenset({"embed", "embed_options"})  # Streamlit's own
TEXT = frozenset({"run.active"})  # bound widgets whose values are names: a run may be called "inf"
APP = Path(__file__).resolve().parent.parent / "app.py"


def remember():
    """On a session's first run, before any widget: keep the URL's parameters, to check each one when
    the widget it names has been drawn."""
    if PENDING not in st.session_state:
        st.session_state[PENDING] = {k: st.query_params.get_all(k) for k in st.query_params if k not in IGNORED}
        infinite = [k for k, raw in st.session_state[PENDING].items() if k not in TEXT and any(map(_infinite, raw))]
        if infinite:
            # Streamlit's integer number_input turns a URL's "inf" or "1e400" into an int before it checks the
            # range: OverflowError, a traceback instead of the page. Drop such values and run again with the
            # URL without them (the notice still names them, as any value a widget cannot take).
            for key in infinite:
                _drop(key)
            st.rerun()


def check() -> list[str]:
    """After a script run: settle the pending parameters whose widgets now exist; a sentence for each one
    that could not be used. Parameters of pages not visited yet stay pending; unknown ones are dropped."""
    pending = st.session_state.get(PENDING) or {}
    found = []
    for key, raw in list(pending.items()):
        shown = ", ".join(raw)
        if key in st.session_state:
            del pending[key]
            if st.query_params.get_all(key) != raw and not matches(st.session_state[key], raw):
                found.append(f"{md(key)}={md(shown)} is not valid here (now {md(describe(st.session_state[key]))})")
        elif not key.startswith(OURS):
            del pending[key]
            found.append(f"{md(key)} is not a setting of VAE Lab")
            _drop(key)
    return found


def report(slot):
    """Say which of the link's settings whose widgets exist by now were not used (called before and after
    the page: a statement after st.stop() never runs, and every element written after it is discarded)."""
    if not st.session_state.get(PENDING):
        return
    found = check()
    if found:
        slot.warning("Some settings of this link could not be used, so their defaults apply: "
                     + "; ".join(found) + ".", icon=":material/link_off:")


def matches(value, raw: list[str]) -> bool:
    """Whether a widget's value is what the URL's strings asked for (the URL gave the default, which the
    widget leaves out of the URL, or another spelling of the value, like 5.0 for 5)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return len(values) == len(raw) and all(_same(v, r) for v, r in zip(values, raw))


def _same(v, r: str) -> bool:
    if v is None:
        return r in ("", "None")
    if isinstance(v, bool):
        return r.lower() == str(v).lower()
    if isinstance(v, (int, float)):
        try:
            return math.isclose(float(r), float(v), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return str(v) == r


def describe(value) -> str:
    if value is None:
        return "empty"
    if isinstance(value, float) and value.is_integer():  # whole numbers live in float widgets (ui/sidebar.py)
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "empty"
    return str(value)


def _infinite(raw: str) -> bool:
    try:
        return math.isinf(float(raw))
    except ValueError:
        return False


def _drop(key: str):
    """Remove a parameter that names no setting from the URL."""
    try:
        del st.query_params[key]
    except Exception:  # noqa: BLE001  (bound to some widget after all: Streamlit keeps it)
        pass


def run_page(body):
    """Run a page's body, or hand a deep link's first visit over to app.py.

    Until app.py's st.navigation has run once in a server (AppTest: in each run), Streamlit treats the
    pages/ folder as an old-style multipage app and runs the page file whose name matches the URL
    (/log-px → pages/log-px.py) on its own, without the sidebar. Such a run executes app.py instead,
    whose st.navigation resolves the same URL to this page and runs it with the sidebar. In the body, an answer
    not yet computed is computed by the server's answer threads while the page shows a box (ui.pending).
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        runpy.run_path(str(APP), run_name="__main__")
        return
    with pending.deferring():  # an answer that takes long is computed off this script run, which shows a box
        body()
