"""Several runs side by side: their histories, and their log p(x) estimates as shared background jobs.

The estimates are the log p(x) page's jobs (ui.logpx, same keys), so a run estimated on either page
is answered at once on the other.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from vae_tf.checkpoints import CheckpointError
from vae_tf.data import DataError

from . import loaders, logpx, state

N_IMAGES, K, SEED = logpx.DEFAULT_IMAGES, logpx.DEFAULT_K, logpx.DEFAULT_SEED


def run_key(name: str) -> tuple:
    root = state.checkpoints_root()
    return str(root), name, state.run_stamp(name, root)


def summaries(names) -> dict:
    """name → run_summary (config, meta, final epoch) for each readable run."""
    out = {}
    for name in names:
        root, _, stamp = run_key(name)
        try:
            out[name] = loaders.run_summary(root, name, stamp)
        except CheckpointError:
            pass
    return out


def histories(names) -> dict:
    return {name: loaders.run_history(*run_key(name)) for name in names}


def job(name: str, n: int = N_IMAGES, k: int = K, seed: int = SEED):
    return loaders.job_registry().get(logpx.estimate_key(run_key(name), n, k, seed))


def start(name: str, n: int = N_IMAGES, k: int = K, seed: int = SEED):
    """Start (or find) the estimate of run `name`; None if the run or its data cannot be loaded."""
    key = run_key(name)
    try:
        run = loaders.run(*key)
        x, _ = loaders.test_set(run.config.dataset, run.config.likelihood)
    except (CheckpointError, DataError):
        return None
    return logpx.start_estimate(run.model, x, key, n, k, seed)


def finished_estimate(name: str, n: int = N_IMAGES, k: int = K, seed: int = SEED):
    j = job(name, n, k, seed)
    if j is None or j.running or j.error is not None:
        return None
    return j.result.estimate


def bounds_table(names, n: int = N_IMAGES, k: int = K, seed: int = SEED) -> pd.DataFrame:
    """Per run with a finished estimate: ELBO, L_k for the run's own k (IWAE runs) and L_5, log p(x) and gap,
    means over the same first n test images."""
    rows = []
    for name in names:
        est = finished_estimate(name, n, k, seed)
        if est is None:
            continue
        curve = est.iwae_curve()
        lk = dict(zip(curve["k"], curve["mean"]))
        s = est.summary()
        rows.append({"run": name, "images": est.num_images, "ELBO": s["elbo"], "L_5": lk.get(5, np.nan),
                     "L_50": lk.get(50, np.nan), f"log p(x), K = {est.k}": s["log_px"], "gap": s["gap"],
                     "gap stderr": s["gap_stderr"]})
    return pd.DataFrame(rows)


def comparable(summ: dict) -> bool:
    """True when all runs model the same data with the same likelihood: only then do their nats compare."""
    kinds = {(s["config"]["dataset"], s["config"]["likelihood"]) for s in summ.values()}
    return len(kinds) <= 1
