"""Cached computations of the Posterior, Theory, Sampling-the-prior, Latent-map and Compare pages.

Each result is cached per (run key, question): run keys carry the run's stamp, so a run rewritten
on disk is computed afresh. Models and images are passed with a leading underscore (not hashed).
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from . import model_ops, state

TWO_D_RUN = "fashion-2d"  # the shipped run with a 2-D latent
GAUSSIAN_RUN = "fashion-linear-gaussian"  # the shipped run whose log p(x) has a closed form
IS_K = 5000  # importance samples per image for the per-image answers on these pages


def make_active(name: str):
    """A button callback: make `name` the active run (runs before the sidebar draws its picker)."""
    st.session_state[state.ACTIVE_RUN] = name


def run_exists(name: str) -> bool:
    return name in state.run_names()


def offer_run(name: str, why: str, key: str):
    """A sentence saying why another run suits this page, and a button that makes it active."""
    if run_exists(name):
        st.button(f"Use {name}", key=key, type="primary", on_click=make_active, args=(name,),
                  icon=":material/swap_horiz:", help=why)
    else:
        st.caption(f"The shipped run {name} is not in {state.checkpoints_root()}; "
                   "checkpoints/make_shipped_runs.sh re-creates it.")


@st.cache_data(max_entries=32, show_spinner="Integrating the posterior on a grid…")
def grid_posterior(run_key: tuple, index: int, _model, _x):
    from vae_tf import estimators

    return estimators.grid_posterior(_model, _x[index], n=101, max_n=201, tol=1e-2)


@st.cache_data(max_entries=16, show_spinner="Evaluating the posterior at the prior's scale…")
def prior_scale_grid(run_key: tuple, index: int, half_width: float, n: int, _model, _x):
    from vae_tf import theory

    z = np.linspace(-half_width, half_width, n)
    return z, z, theory.log_joint_grid(_model, _x[index], z, z)


@st.cache_data(max_entries=64, show_spinner="Importance sampling…")
def importance(run_key: tuple, index: int, k: int, seed: int, _model, _x) -> dict:
    from vae_tf import estimators

    est = estimators.estimate_log_px(_model, _x[index:index + 1], k=k, seed=seed)
    return {"log_px": float(est.log_px[0]), "elbo": float(est.elbo[0]), "ess": float(est.ess[0]),
            "mc_stderr": float(est.log_px_mc_stderr[0]), "k": k}


@st.cache_data(max_entries=32, show_spinner="Computing every term…")
def derivation(run_key: tuple, index: int, num_samples: int, seed: int, _model, _x):
    from vae_tf import theory

    return theory.derivation(_model, _x[index], num_samples=num_samples, seed=seed)


@st.cache_data(max_entries=32, show_spinner="Finding log p(x)…")
def reference(run_key: tuple, index: int, _model, _x):
    from vae_tf import theory

    return theory.reference_log_px(_model, _x[index], k=IS_K)


@st.cache_data(max_entries=16, show_spinner="Importance sampling with both proposals…")
def proposal_study(run_key: tuple, index: int, ks: tuple, repeats: int, _model, _x):
    from vae_tf import theory

    return theory.proposal_study(_model, _x[index], ks=ks, repeats=repeats)


@st.cache_data(max_entries=64, show_spinner=False)
def decode(run_key: tuple, z: tuple, _model) -> np.ndarray:
    """E[x|z] for each code in z (a tuple of tuples, so it can be hashed)."""
    return model_ops.decode_mean(_model, np.asarray(z, np.float32).reshape(len(z), -1))


@st.cache_data(max_entries=8, show_spinner="Decoding a grid of codes…")
def decoded_grid(run_key: tuple, u1: tuple, u2: tuple, center: tuple, axes: tuple, _model) -> np.ndarray:
    """(len(u2), len(u1), D): decoder means at center + u1[j]·axes[0] + u2[i]·axes[1]."""
    c, a = np.asarray(center, np.float64), np.asarray(axes, np.float64)
    g1, g2 = np.meshgrid(np.asarray(u1), np.asarray(u2))
    z = c + g1.reshape(-1, 1) * a[0] + g2.reshape(-1, 1) * a[1]
    out = model_ops.decode_mean(_model, z.astype(np.float32))
    return out.reshape(len(u2), len(u1), -1)


def q_samples(model, x_single, n: int, seed: int) -> np.ndarray:
    """n draws z ~ q(z|x) for one image (stateless seed)."""
    q = model.posterior(np.asarray(x_single, np.float32)[None])
    return np.asarray(q.sample(n, seed=model_ops.tf_seed(seed, 3)))[:, 0, :]


@st.cache_data(max_entries=4, show_spinner="Computing the exact log p(x) of the test set…")
def exact_log_px(run_key: tuple, _model, _x) -> np.ndarray:
    """Closed-form log p(x) of every test image (linear decoder, Gaussian likelihood)."""
    from vae_tf import estimators

    return np.concatenate([estimators.exact_log_px(_model, _x[i:i + 2000]) for i in range(0, len(_x), 2000)])


def other_run(name: str):
    """(run key, model, test images) of another run in the checkpoints root, or None if it is missing
    or cannot be loaded."""
    from vae_tf.checkpoints import CheckpointError
    from vae_tf.data import DataError

    from . import loaders

    if not run_exists(name):
        return None
    root = state.checkpoints_root()
    stamp = state.run_stamp(name, root)
    try:
        run = loaders.run(str(root), name, stamp)
        x, _ = loaders.test_set(run.config.dataset, run.config.likelihood)
    except (CheckpointError, DataError):
        return None
    return (str(root), name, stamp), run.model, x
