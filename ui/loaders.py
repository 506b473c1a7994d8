"""Cached loaders: one copy per server process of each data set, run and job registry.

st.cache_resource shares the object between sessions without copying it (a Keras model
cannot be pickled cheaply, and every session may read the same one). Cache keys carry the
run's stamp (meta.json's mtime), so a run rewritten on disk is loaded again.
"""
from __future__ import annotations

import atexit
import threading
import zipfile

import numpy as np
import streamlit as st

from vae_tf import checkpoints, data

from . import jobs, state


@st.cache_resource(max_entries=4, show_spinner="Loading the data set…")
def dataset(name: str) -> data.Dataset:
    """fashion_mnist, mnist (may raise DataError offline) or an .npz path. Errors are not cached."""
    return data.load_dataset(name)


@st.cache_resource(max_entries=6, show_spinner=False)
def test_set(name: str, likelihood: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The test images in model space (flat float32; fixed binarization for Bernoulli) and labels."""
    ds = dataset(name)
    return ds.test_images(likelihood), ds.y_test


@st.cache_resource(max_entries=8, show_spinner="Loading the run…")
def run(root: str, name: str, stamp: int) -> checkpoints.Run:
    return checkpoints.load_run(checkpoints.run_dir(name, root), name=name)


@st.cache_data(max_entries=64, show_spinner=False)
def run_summary(root: str, name: str, stamp: int) -> dict:
    """Config, meta and final epoch of a run, from its JSON files only (no model, no TensorFlow)."""
    path = checkpoints.run_dir(name, root)
    config = checkpoints.read_config(path)
    meta = checkpoints.read_meta(path)
    history = checkpoints.read_json(path / "history.json")
    epochs = history.get("epochs") or []
    return {"config": config.to_dict(), "meta": meta, "final": epochs[-1] if epochs else {}}


# Members every VAE Lab weights file holds, whatever the config (model.py names the output layers so).
REQUIRED_WEIGHTS = ("encoder/enc_out/kernel.npy", "decoder/dec_out/kernel.npy", "__steps_done__.npy")


@st.cache_data(max_entries=256, show_spinner=False)
def run_problem(root: str, name: str, stamp: int) -> str | None:
    """Why the run cannot be loaded, read from its files without TensorFlow (so the sidebar can afford it
    for every run), or None if it looks whole. Names, JSON files and the weights file's directory and
    checksums are checked; a file that passes all that but does not fit the model is caught on loading."""
    try:
        path = checkpoints.run_dir(name, root)
    except checkpoints.CheckpointError:
        return "not a run name: 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    try:
        checkpoints.read_meta(path)
        checkpoints.read_config(path)
        checkpoints.read_history(path)
        weights = path / "weights.npz"
        if not weights.is_file():
            return "weights.npz is missing"
        try:
            with zipfile.ZipFile(weights) as z:
                damaged = z.testzip()  # reads every member: a CRC that does not match names it
                members = set(z.namelist())
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            return f"weights.npz is not a readable weights file (truncated or foreign?): {e}"
        if damaged:
            return f"weights.npz is damaged ({damaged} does not match its checksum)"
        if not set(REQUIRED_WEIGHTS) <= members:
            return "weights.npz is not a VAE Lab weights file (foreign?)"
    except checkpoints.CheckpointError as e:
        return str(e).replace(f"{path}/", "")
    return None


@st.cache_data(max_entries=16, show_spinner=False)
def run_history(root: str, name: str, stamp: int) -> dict:
    """history.json: {"epochs": [per-epoch metrics], "steps": [[step, elbo, recon, kl], ...]}."""
    return checkpoints.read_json(checkpoints.run_dir(name, root) / "history.json")


class TrainingSlots:
    """A counting semaphore with a non-blocking acquire and a readable count."""

    def __init__(self, size: int):
        self.size, self.used, self._lock = size, 0, threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.used >= self.size:
                return False
            self.used += 1
            return True

    def release(self):
        with self._lock:
            self.used = max(0, self.used - 1)

    @property
    def busy(self) -> bool:
        return self.used >= self.size


@st.cache_resource
def training_slots() -> TrainingSlots:
    """Shared by every session of this server: caps concurrent trainings on the shared CPU."""
    return TrainingSlots(state.max_concurrent_trainings())


@st.cache_resource
def job_registry() -> jobs.Jobs:
    registry = jobs.Jobs()
    atexit.register(registry.shutdown)
    return registry


@st.cache_data(max_entries=8, show_spinner="Encoding test images…")
def latent_means(run_key: tuple, n: int, _model, _x) -> np.ndarray:
    """Posterior means μ(x) of the first n test images of the run named by run_key (root, name, stamp)."""
    from . import model_ops

    return model_ops.encode_mean(_model, _x[:n])
