"""Helpers every page uses: the sidebar's settings, the active run with its test data, charts."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from vae_tf.checkpoints import CheckpointError, Run
from vae_tf.data import DataError, Dataset

from . import loaders, state
from .sidebar import Settings


@dataclass
class ActiveRun:
    run: Run
    dataset: Dataset
    x: np.ndarray  # test images in model space, flat (N, D)
    y: np.ndarray | None  # test labels
    key: tuple  # (root, name, stamp): the cache key of everything computed from this run

    @property
    def model(self):
        return self.run.model

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.dataset.image_shape

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.dataset.class_names

    def label(self, i: int) -> str:
        return self.dataset.label_name(self.y[i]) if self.y is not None else ""

    def images(self, flat) -> np.ndarray:
        """Flat model-space rows → (N, H, W) for drawing."""
        return np.asarray(flat).reshape(-1, *self.image_shape)


def settings() -> Settings:
    s = st.session_state.get(state.SETTINGS)
    if s is None:  # a page run on its own (not through app.py)
        from . import sidebar
        s = sidebar.render()
    return s


def active_run() -> ActiveRun:
    """The run picked in the sidebar, loaded, with its data set's test images; stops the page with a
    clear message when there is none or it cannot be read."""
    s = settings()
    if s.run_name is None:
        st.info("There is no trained run yet. Train one on the **Train** page; it becomes the active run.")
        st.stop()
    try:
        with st.spinner(f"Loading run {s.run_name} (the first time, TensorFlow too)…"):
            run = loaders.run(str(s.root), s.run_name, s.run_stamp)
    except CheckpointError as e:
        st.error(f"The run **{s.run_name}** cannot be loaded: {e}")
        st.stop()
    try:
        ds = loaders.dataset(run.config.dataset)
        x, y = loaders.test_set(run.config.dataset, run.config.likelihood)
    except DataError as e:
        st.error(f"The data set of run **{s.run_name}** cannot be loaded: {e}\n\n"
                 f"Pick a Fashion-MNIST run (for example **{state.DEFAULT_RUN}**) in the sidebar; "
                 "Fashion-MNIST is bundled and works offline.")
        st.stop()
    if ds.num_pixels != run.model.num_pixels:
        st.error(f"Run **{s.run_name}** models {run.model.num_pixels}-pixel images, but its data set "
                 f"{run.config.dataset} has {ds.num_pixels}-pixel images.")
        st.stop()
    return ActiveRun(run, ds, x, y, (str(s.root), s.run_name, s.run_stamp))


def chart(fig, caption: str | None = None, key: str | None = None, toolbar: bool = True):
    """A plotly chart at full width, with a sentence under it saying what it shows and why.
    Image grids pass toolbar=False: plotly's toolbar would cover the titles of the top-right images."""
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False, "displayModeBar": toolbar})
    if caption:
        st.caption(caption)


def show_flash():
    """Messages left by the previous script run (a finished or stopped training, ...)."""
    for kind, message in st.session_state.pop(state.FLASH, []):
        getattr(st, kind)(message)


def flash(kind: str, message: str):
    st.session_state.setdefault(state.FLASH, []).append((kind, message))


def fmt_seconds(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "…"
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s} s"


def class_options(active: ActiveRun) -> list[int]:
    if active.y is None:
        return []
    return sorted(int(c) for c in np.unique(active.y))
