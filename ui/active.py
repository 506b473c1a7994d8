"""The active run every page shows: loaded once per server, with its data set's test images."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from vae_tf.data import DataError, Dataset
from vae_tf.runs import CheckpointError, Run, RunRef

from . import cache, catalog, server, session
from .escape import md
from .sidebar import Settings


@dataclass
class ActiveRun:
    run: Run
    dataset: Dataset
    x: np.ndarray  # test images in model space, flat (N, D)
    y: np.ndarray | None  # test labels
    key: RunRef  # the cache key of everything computed from this run

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

    def classes(self) -> list[int]:
        return [] if self.y is None else sorted(int(c) for c in np.unique(self.y))


def settings() -> Settings:
    s = st.session_state.get(session.SETTINGS)
    if s is None:  # a page run on its own (not through app.py)
        from . import sidebar
        s = sidebar.render()
    return s


def picked() -> tuple[RunRef, dict] | None:
    """The active run's cache key and its config, as the sidebar read them from its JSON files, without loading
    the run (no TensorFlow): what a page needs to decide whether it computes anything. None where there is no
    run or it cannot be read (active_run says which)."""
    s = settings()
    if s.run_name is None or not s.run_summary:
        return None
    return s.ref, s.run_summary["config"]


def active_run() -> ActiveRun:
    """The run picked in the sidebar, loaded, with its data set's test images; stops the page with a
    clear message when there is none or it cannot be read."""
    s = settings()
    if s.run_name is None:
        st.info("There is no trained run yet. Train one on the **Train** page; it becomes the active run.")
        st.stop()
    ref = s.ref
    try:
        run = cache.run(ref)  # the first time (TensorFlow too) the page says so (ui.pending)
    except CheckpointError as e:
        st.error(f"The run **{s.run_name}** cannot be loaded: {md(e)}")
        st.stop()
    try:
        _own_data(s.run_name, run.config.dataset)
        ds = cache.dataset(run.config.dataset)
        x, y = cache.test_set(run.config.dataset, run.config.likelihood)
    except DataError as e:
        st.error(f"The data set of run **{s.run_name}** cannot be loaded: {md(e)}\n\n"
                 f"Pick a Fashion-MNIST run (for example **{server.DEFAULT_RUN}**) in the sidebar; "
                 "Fashion-MNIST is bundled and works offline.")
        st.stop()
    if ds.num_pixels != run.model.num_pixels:
        st.error(f"Run **{s.run_name}** models {run.model.num_pixels}-pixel images, but its data set "
                 f"{run.config.dataset} has {ds.num_pixels}-pixel images.")
        st.stop()
    return ActiveRun(run, ds, x, y, ref)


def _own_data(name: str, dataset: str):
    """An uploaded data set's test images are its uploader's: another visitor's run on one is not drawn."""
    from vae_tf.config import DATASETS

    owner = catalog.owner(name)
    if dataset not in DATASETS and owner is not None and owner != session.visitor():
        raise DataError("it was trained on another visitor's upload, whose images are theirs")


def make_active(name: str):
    """A button callback: make `name` the active run (runs before the sidebar draws its picker)."""
    st.session_state[session.ACTIVE_RUN] = name


def load(name: str) -> ActiveRun | None:
    """Another run of this server, loaded like the active one (which stays as it is); None if it cannot be."""
    if not catalog.exists(name):
        return None
    ref = catalog.ref(name)
    try:
        run = cache.run(ref)
        x, y = cache.test_set(run.config.dataset, run.config.likelihood)
        return ActiveRun(run, cache.dataset(run.config.dataset), x, y, ref)
    except (CheckpointError, DataError):
        return None


def other_run(name: str) -> tuple[RunRef, object, np.ndarray] | None:
    """(ref, model, test images) of another run on this server, or None if it is missing or cannot be loaded."""
    run = load(name)
    return None if run is None else (run.key, run.model, run.x)
