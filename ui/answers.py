"""Answers: st.cache_data's role, over one cache bounded by bytes (ui.lru) and shared by every session.

`answer()` is the decorator of every cached answer of the app (ui.cache): one answer per server for each value
of a function's arguments, arrays shared read-only, an answer not yet held computed off the page's script run.
"""
from __future__ import annotations

import contextlib
import copy as copy_
import functools
import inspect
from dataclasses import fields, is_dataclass

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from . import lru, pending, server

ANSWER_OVERHEAD = 1024  # bytes an answer counts beyond its arrays and objects (its key, the cache's entry)


@st.cache_resource
def answer_cache() -> lru.ByteLRU:
    """Every answer below, in one least-recently-used cache bounded by their bytes (VAE_LAB_ANSWER_CACHE_MB):
    st.cache_data bounds each function by a count of entries, whatever an entry weighs (a grid of decoded
    64×64 images, a run's history of a million steps)."""
    return lru.ByteLRU(server.answer_cache_mb() * 2**20, size_of=lambda v: lru.deep_bytes(v) + ANSWER_OVERHEAD)


def answer(spinner: str | None = None, copy: bool = False):
    """st.cache_data's decorator, over answer_cache(): one answer per server for each value of the arguments,
    except those named with a leading underscore (models and images, identified by the RunRef beside them).
    Arrays in an answer are made read-only and shared, not copied; with copy, each caller gets its own deep
    copy (JSON read from a run, which a page may change), as st.cache_data gives. The spinner shows only on a
    script run (not in the server's prewarm thread). An answer not yet held, asked from a page's body, is
    computed off the script run (ui.pending): the page shows a box until it is ready."""
    def wrap(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            key = (fn.__name__, *(_hashable(v) for k, v in bound.arguments.items() if not k.startswith("_")))

            def make():
                shown = st.spinner(spinner) if spinner and get_script_run_ctx(suppress_warning=True) else None
                with shown or contextlib.nullcontext():
                    return _read_only(fn(*args, **kwargs))
            store = answer_cache()  # fetched on the caller's thread: pending's threads call no st.* function
            if key in store:
                value = store.get(key, make)
            else:  # in a page's body, computed off its script run (ui.pending)
                value = pending.get(("answer", key), lambda: store.get(key, make), spinner or "")
            return copy_.deepcopy(value) if copy else value
        return call
    return wrap


def _hashable(v):
    """A key for an argument: lists as tuples, arrays by their dtype, shape and bytes."""
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    return v


def _read_only(value):
    """The answer, its arrays made read-only: it is shared by every caller, who must not change it."""
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _read_only(v)
    elif isinstance(value, dict):
        for v in value.values():
            _read_only(v)
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            _read_only(getattr(value, f.name))
    return value
