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


# -- a VAE beside an IWAE --------------------------------------------------------------------------------
IWAE_PAIR = ("fashion-vae5", "fashion-iwae5")  # shipped: the same model trained on the ELBO and on L_5


def pair_section(prefix: str, n: int = N_IMAGES, k: int = K, seed: int = SEED):
    """Two runs side by side, by default the shipped VAE and IWAE trained alike: their ELBO, IWAE bounds
    L_k, log p(x) and gap on the same test images, from the shared log p(x) jobs."""
    from vae_tf import plots_extra

    from . import common

    names = state.run_names()
    if len(names) < 2:
        st.info("Two runs are needed; train another on the Train page.")
        return
    defaults = [r for r in IWAE_PAIR if r in names] or names[:2]
    if len(defaults) < 2:
        defaults = (defaults + [r for r in names if r not in defaults])[:2]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Run A", names, index=names.index(defaults[0]), key=prefix + "a", bind="query-params",
                     persist_state="session")
    b = c2.selectbox("Run B", names, index=names.index(defaults[1]), key=prefix + "b", bind="query-params",
                     persist_state="session")
    pair = [a] if a == b else [a, b]
    summ = summaries(pair)
    if not comparable(summ):
        st.warning("These two runs differ in data set or likelihood: their nats are not on one scale.")
    for name in pair:
        st.caption(f"**{name}**: " + describe(summ[name]["config"]) if name in summ else name)
    missing = [name for name in pair if job(name, n, k, seed) is None]
    if missing and st.button(f"Estimate log p(x) of {', '.join(missing)}", key=prefix + "go", type="primary",
                             icon=":material/calculate:"):
        for name in missing:
            start(name, n, k, seed)
    running = [name for name in pair if (j := job(name, n, k, seed)) is not None and j.running]
    if running:
        @st.fragment(run_every=2.0)
        def progress():
            if not any(job(name, n, k, seed).running for name in running):
                st.rerun()
            for name in running:
                j = job(name, n, k, seed)
                st.progress(j.fraction, text=f"{name}: {j.done} of {j.total} images "
                                             f"(ETA {common.fmt_seconds(j.eta_seconds)})")
        progress()
    table = bounds_table(pair, n, k, seed)
    if len(table) < len(pair):  # side by side or not at all
        for name in pair:
            j = job(name, n, k, seed)
            if j is not None and not j.running and j.error is not None:
                st.error(f"The estimate of {name} failed: {j.error_text}")
        return
    lp = [c for c in table.columns if c.startswith("log p(x)")][0]
    rows = {"ELBO = L₁": table["ELBO"], "L₅": table["L_5"], "L₅₀": table["L_50"], f"log p(x), K = {k}": table[lp]}
    common.chart(plots_extra.bound_comparison(list(table["run"]), {r: list(v) for r, v in rows.items()}),
                 f"Means over the first {n} test images, from one set of K = {k} draws per image: the ELBO, the "
                 "IWAE bounds L₅ and L₅₀, and the importance-sampled log p(x). Each run's line climbs by its gap "
                 "from the first point to the last.", key=prefix + "chart", toolbar=False)
    fmt = st.column_config.NumberColumn(format="%.2f")
    st.dataframe(table, hide_index=True, column_config={c: fmt for c in table.columns if c not in ("run", "images")})
    if len(table) == 2:
        r = table.set_index("run")
        st.markdown(
            f"On these images **{a}** has ELBO {r.loc[a, 'ELBO']:.2f}, log p(x) {r.loc[a, lp]:.2f} and a gap of "
            f"{r.loc[a, 'gap']:.2f} nats; **{b}** has ELBO {r.loc[b, 'ELBO']:.2f}, log p(x) {r.loc[b, lp]:.2f} and "
            f"a gap of {r.loc[b, 'gap']:.2f}. An IWAE maximises L_k, not the ELBO: its encoder only has to "
            "propose useful samples, not to match the posterior, so its ELBO and its gap are usually worse while "
            "its log p(x) is as good or better (Burda et al., 2016; Cremer et al., 2018).")


def describe(config: dict) -> str:
    return (f"{config['objective']} objective, k = {config['mc_samples']}, latent {config['latent_dim']}, hidden "
            f"{','.join(map(str, config['hidden']))}, {config['epochs']} epochs, {config['likelihood']} likelihood")
