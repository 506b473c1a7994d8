"""Every cached call of the app, in one place: one copy per server of each data set, run and answer.

st.cache_resource holds each cache, shared by every session; the caches are bounded by bytes (ui.lru):
the data sets, the loaded runs (a Keras model is shared, never copied) and the answers (ui.answers, in
st.cache_data's role, whose bound is a count of entries whatever they weigh). Keys carry a `RunRef`
(root, name, stamp: the stamp changes whenever the run is rewritten), so a run rewritten on disk is
computed afresh. Models and images are passed with a leading underscore (not hashed). TensorFlow is imported inside the
functions that need it, so a page that needs none draws before TensorFlow has loaded.
"""
from __future__ import annotations

import atexit

import numpy as np
import streamlit as st

from vae_tf import data, runs
from vae_tf.config import DATASETS
from vae_tf.runs import RunRef

from . import jobs, lru, pending, server, session
from .answers import answer

IS_K = 5000  # importance samples per image for the per-image answers of the Posterior and Theory pages


# -- data sets and runs ------------------------------------------------------------------------------
def dataset(name: str) -> data.Dataset:
    """fashion_mnist, mnist (may raise DataError offline) or an .npz uploaded to this server. A file anywhere
    else (a config.json or link that names one) is refused: the server reads no file a visitor names."""
    return _dataset(data_file(name))


def data_file(name: str) -> str:
    """What data.load_dataset reads for the data set `name`: the built-in name, or the upload's file."""
    if name in DATASETS:
        return name
    try:
        return str(server.upload_path(name))
    except ValueError as e:
        raise data.DataError(str(e)) from None


@st.cache_resource
def data_cache() -> lru.ByteLRU:
    """Data sets and test sets, bounded by their bytes (VAE_LAB_DATA_CACHE_MB): an upload of 30,000 images of
    64×64 is 131 MB as uint8 and 4 times that as the float32 test set."""
    return lru.ByteLRU(server.data_cache_mb() * 2**20)


def _dataset(name: str) -> data.Dataset:
    return data_cache().get(("dataset", name), lambda: data.load_dataset(name))


def test_set(name: str, likelihood: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The test images in model space (flat float32; fixed binarization for Bernoulli) and labels."""
    def make():
        ds = dataset(name)
        return ds.test_images(likelihood), ds.y_test
    return data_cache().get(("test", data_file(name), likelihood), make)


COMPILED_MB = 12  # what a loaded run's compiled functions (estimators, encoder, decoder) add: README, Memory


@st.cache_resource
def run_cache() -> lru.ByteLRU:
    """Loaded runs, bounded by their bytes (VAE_LAB_RUN_CACHE_MB): a run trained at the training budget's
    limit holds ~30 M parameters, 120 MB of weights, so eight by count could hold a gigabyte."""
    return lru.ByteLRU(server.run_cache_mb() * 2**20, size_of=run_bytes)


def run_bytes(run: runs.Run) -> int:
    """A loaded run's memory: its float32 weights, its history as read, and its compiled functions."""
    return 4 * run.model.num_parameters() + runs.history_bytes(run.path) + COMPILED_MB * 2**20


def run(ref: RunRef) -> runs.Run:
    """The run `ref`, loaded once per server (its stamp in the key: a run rewritten on disk loads afresh)."""
    store, key = run_cache(), ("run", ref)

    def load():
        return store.get(key, lambda: runs.load_run(ref.path, name=ref.name))
    if key in store:
        return load()
    return pending.get(key, load, f"Loading run {ref.name} (the first time, TensorFlow too)")


@answer(copy=True)
def run_summary(ref: RunRef) -> dict:
    """Config, meta and final epoch of a run, from its JSON files only (no model, no TensorFlow)."""
    return runs.read_summary(ref.path)


@answer()
def run_problem(ref: RunRef) -> str | None:
    """Why the run cannot be loaded (read without TensorFlow, so the sidebar can afford it for every run)."""
    return runs.run_problem(ref)


@answer(copy=True)
def run_history(ref: RunRef) -> dict:
    """history.json: {"epochs": [per-epoch metrics], "steps": [[step, elbo, recon, kl], ...]}."""
    return runs.read_history(ref.path)


# -- what every session shares ---------------------------------------------------------------------------
@st.cache_resource
def training_slots() -> jobs.TrainingSlots:
    """Shared by every session of this server: caps concurrent trainings on the shared CPU."""
    return jobs.TrainingSlots(server.max_concurrent_trainings())


@st.cache_resource
def trainings() -> jobs.Board:
    """Each visitor's training, by visitor: it outlives the script runs and sessions that poll it."""
    return jobs.Board()


@st.cache_resource
def job_registry() -> jobs.Jobs:
    """The server's jobs; each remembers the sessions that asked for it, and stops once all have gone."""
    registry = jobs.Jobs(asker=session.session_id, is_active=session.is_active)
    atexit.register(registry.shutdown)
    return registry


# -- answers computed from a run ---------------------------------------------------------------------------
@answer("Encoding test images…")
def latent_means(ref: RunRef, n: int, _model, _x) -> np.ndarray:
    """Posterior means μ(x) of the first n test images."""
    from vae_tf.model import encode_mean

    return encode_mean(_model, _x[:n])


@answer("Encoding test images…")
def latent_map(ref: RunRef, n: int, _model, _x):
    """(projection, points): the 2-D view of the first n test images' means (latent.projection_2d) and the means
    in it. Held, not redone on each script run: the SVD there competes with TensorFlow's threads for the cores."""
    from vae_tf import latent

    z = latent_means(ref, n, _model, _x)
    proj = latent.projection_2d(z)
    return proj, proj(z)


@answer()
def interpolation(ref: RunRef, ia: int, ib: int, steps: int, _model, _x):
    """(z_A, z_B, paths, images): the means of test images ia and ib, the linear and the spherical path of
    `steps` codes between them, and the decoder's mean image at each code of each path."""
    from vae_tf import latent
    from vae_tf.model import decode_mean, encode_mean

    za, zb = encode_mean(_model, _x[[ia, ib]])
    paths = {kind: latent.path(za, zb, steps, kind) for kind in ("linear", "spherical")}
    return za, zb, paths, {kind: decode_mean(_model, p) for kind, p in paths.items()}


@answer()
def reconstructions(ref: RunRef, idx: tuple, sample: bool, seed: int, _model, _x):
    """(E[x|z] at the mean of q(z|x), or at one draw z ~ q(z|x), and the 16-sample ELBO terms) of test images idx."""
    from vae_tf import estimators, model

    x = _x[list(idx)]
    return (model.reconstruct(_model, x, sample=sample, seed=seed),
            estimators.elbo(_model, x, num_samples=16, seed=seed))


@answer()
def prior_samples(ref: RunRef, n: int, seed: int, _model) -> np.ndarray:
    """E[x|z] of n draws z ~ p(z)."""
    from vae_tf import model

    return model.sample_prior(_model, n, seed)


@answer("Integrating the posterior on a grid…")
def grid_posterior(ref: RunRef, index: int, _model, _x):
    from vae_tf import exact

    return exact.grid_posterior(_model, _x[index], n=101, max_n=201, tol=1e-2)


@answer()
def posterior_modes(ref: RunRef, index: int, _model, _x) -> list:
    """The local maxima of the gridded posterior of test image index (exact.posterior_modes)."""
    from vae_tf import exact

    g = grid_posterior(ref, index, _model, _x)
    return exact.posterior_modes(g.z1, g.z2, g.log_posterior)


@answer()
def posterior_samples(ref: RunRef, index: int, n: int, seed: int, _model, _x) -> np.ndarray:
    """(n, d): draws z ~ q(z|x) for test image index."""
    from vae_tf.model import sample_posterior

    return sample_posterior(_model, _x[index], n, seed=seed)


@answer("Evaluating the posterior at the prior's scale…")
def prior_scale_grid(ref: RunRef, index: int, half_width: float, n: int, _model, _x):
    from vae_tf import exact

    z = np.linspace(-half_width, half_width, n)
    return z, z, exact.log_joint_grid(_model, _x[index], z, z)


@answer("Importance sampling…")
def importance(ref: RunRef, index: int, k: int, seed: int, _model, _x) -> dict:
    from vae_tf import estimators

    est = estimators.estimate_log_px(_model, _x[index:index + 1], k=k, seed=seed)
    return {"log_px": float(est.log_px[0]), "elbo": float(est.elbo[0]), "ess": float(est.ess[0]),
            "mc_stderr": float(est.log_px_mc_stderr[0]), "k": k}


@answer("Computing every term…")
def derivation(ref: RunRef, index: int, num_samples: int, seed: int, _model, _x):
    from vae_tf import theory

    return theory.derivation(_model, _x[index], num_samples=num_samples, seed=seed)


@answer("Finding log p(x)…")
def reference(ref: RunRef, index: int, _model, _x):
    from vae_tf import theory

    return theory.reference_log_px(_model, _x[index], k=IS_K)


@answer("Importance sampling with both proposals…")
def proposal_study(ref: RunRef, index: int, ks: tuple, repeats: int, _model, _x):
    from vae_tf import theory

    return theory.proposal_study(_model, _x[index], ks=ks, repeats=repeats)


@answer()
def decode(ref: RunRef, z: tuple, _model) -> np.ndarray:
    """E[x|z] for each code in z (a tuple of tuples, so it can be hashed)."""
    from vae_tf.model import decode_mean

    return decode_mean(_model, np.asarray(z, np.float32).reshape(len(z), -1))


@answer("Decoding a grid of codes…")
def decoded_grid(ref: RunRef, u1: tuple, u2: tuple, center: tuple, axes: tuple, _model) -> np.ndarray:
    """(len(u2), len(u1), D): decoder means at center + u1[j]·axes[0] + u2[i]·axes[1]."""
    from vae_tf.model import decode_mean

    c, a = np.asarray(center, np.float64), np.asarray(axes, np.float64)
    g1, g2 = np.meshgrid(np.asarray(u1), np.asarray(u2))
    z = c + g1.reshape(-1, 1) * a[0] + g2.reshape(-1, 1) * a[1]
    return decode_mean(_model, z.astype(np.float32)).reshape(len(u2), len(u1), -1)


@answer("Computing the exact log p(x) of the test set…")
def exact_log_px(ref: RunRef, _model, _x) -> np.ndarray:
    """Closed-form log p(x) of every test image (linear decoder, Gaussian likelihood)."""
    from vae_tf import exact

    return np.concatenate([exact.exact_log_px(_model, _x[i:i + 2000]) for i in range(0, len(_x), 2000)])


@answer("Fitting probabilistic PCA to the training images…")
def ppca(dataset_name: str, latent_dim: int):
    """The maximum-likelihood linear-Gaussian model of a data set's training grey levels (exact.ppca_ml)."""
    from vae_tf import exact

    x = dataset(dataset_name).x_train
    return exact.ppca_ml(x.reshape(len(x), -1), latent_dim, scale=1 / 255)  # the Gaussian likelihood's grey levels


@answer("Probabilistic PCA's log p(x) of the test set…")
def ppca_test_log_px(dataset_name: str, latent_dim: int) -> np.ndarray:
    """PPCA's log p(x) of every test image: the best any linear-Gaussian model of this latent size does."""
    x, _ = test_set(dataset_name, "gaussian")
    return ppca(dataset_name, latent_dim).log_px(x)


# -- the latent diagnostics (pages/latent.py) -------------------------------------------------------------
@answer("Measuring what the latent code of the test images carries…")
def latent_diagnostics(ref: RunRef, n: int, seed: int, _model, _x):
    """KL per dimension, active units, I(x; z) and KL(q(z) ‖ p(z)) of the first n test images."""
    from vae_tf import diagnostics

    return diagnostics.diagnose(_model, _x[:n], seed=seed)


@answer("Decoding the traversals…")
def traversal(ref: RunRef, index: int, dims: tuple, span: float, steps: int, _model, _x):
    from vae_tf import diagnostics

    return diagnostics.traverse(_model, _x[index], dims, span=span, steps=steps)


@answer("Eigenvalues of the training images' covariance…")
def grey_level_eigenvalues(dataset_name: str) -> np.ndarray:
    """Eigenvalues of the covariance of the training images as grey levels in [0, 1] (a Gaussian model's x)."""
    from vae_tf import diagnostics

    return diagnostics.data_eigenvalues(dataset(dataset_name).x_train) / 255.0 ** 2
