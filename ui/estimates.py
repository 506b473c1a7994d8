"""log p(x) estimates as background jobs keyed on (run, settings), and their tables.

A job keeps running when its page is left and its result is kept (ui.jobs), so a page switch
back, a second tab, or another user with the same question gets the answer at once. The
default question for the shipped default run is started when the server starts (ui.prewarm),
so the page's first open shows results without waiting.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vae_tf.data import DataError
from vae_tf.runs import CheckpointError, RunRef

from . import cache, catalog
from .jobs import Job

_log = logging.getLogger(__name__)
DEFAULT_IMAGES, DEFAULT_K, DEFAULT_SEED, DEFAULT_GRID_IMAGES = 200, 1000, 0, 30
K_CHOICES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
MAX_IMAGES = 2000


@dataclass
class LogPxResult:
    estimate: object  # estimators.Estimate for the first estimate.num_images test images
    exact: np.ndarray | None  # closed-form log p(x) of the same images (linear decoder, Gaussian likelihood)
    exact_kl: np.ndarray | None = None  # closed-form KL(q(z|x) ‖ p(z|x)) of the same images


@dataclass
class GridAnswers:
    """log p(x) by numerical integration over a 2-D latent (grid) or a 1-D one (quadrature), first images."""
    log_px: np.ndarray  # (m,)
    kl: np.ndarray  # (m,) KL(q(z|x) ‖ p(z|x)) = log p(x) − ELBO, both integrated
    converged: np.ndarray  # (m,) bool: log p(x) moved less than its tolerance at the finest spacing
    method: str  # "grid" or "quadrature"

    def __len__(self) -> int:
        return len(self.log_px)


def estimate_key(ref: RunRef, n: int, k: int, seed: int) -> tuple:
    return ("log_px", ref, int(n), int(k), int(seed))


def grid_key(ref: RunRef, m: int) -> tuple:
    return ("grid", ref, int(m))


def _estimate_work(model, x, k: int, seed: int):
    def work(job: Job) -> LogPxResult:
        from vae_tf import estimators, exact

        est = estimators.estimate_log_px(model, x, k=k, seed=seed, on_progress=job.report, stop=job.stop)
        if not exact.has_closed_form(model):
            return LogPxResult(est, None)
        done = x[:est.num_images]
        return LogPxResult(est, exact.exact_log_px(model, done), exact.exact_kl_q_posterior(model, done))
    return work


def start_estimate(model, x, ref: RunRef, n: int, k: int, seed: int, registry=None) -> Job:
    return (registry or cache.job_registry()).start(estimate_key(ref, n, k, seed),
                                                    _estimate_work(model, np.asarray(x[:n]), k, seed), label="log-px")


def find(ref: RunRef, n: int, k: int, seed: int) -> Job | None:
    return cache.job_registry().get(estimate_key(ref, n, k, seed))


def restart_if_failed(ref: RunRef, n: int, k: int, seed: int):
    """Asked again after a Stop or a failure: forget that job, so the next start computes afresh."""
    registry = cache.job_registry()
    old = registry.get(estimate_key(ref, n, k, seed))
    if old is not None and not old.running and (old.error or old.result.estimate.cancelled):
        registry.discard(estimate_key(ref, n, k, seed))


def start_grid(model, x, ref: RunRef, m: int) -> Job:
    """log p(x) by numerical integration over the 2-D latent (or 1-D), for the first m test images."""
    def work(job: Job) -> GridAnswers:
        from vae_tf import exact

        answers = []
        for i in range(m):
            if job.stop.is_set():
                break
            answers.append(exact.exact_answer(model, x[i]))  # refined to 1e-3 nats (grid), 1e-4 (quadrature)
            job.report(i + 1, m)
        return GridAnswers(np.array([a.log_px for a in answers]), np.array([a.kl_q_posterior for a in answers]),
                           np.array([a.converged for a in answers], bool),
                           "grid" if model.config.latent_dim == 2 else "quadrature")
    return cache.job_registry().start(grid_key(ref, m), work, label="grid")


# -- any run by name (Compare runs, a VAE beside an IWAE) -----------------------------------------------------
def job(name: str, n: int = DEFAULT_IMAGES, k: int = DEFAULT_K, seed: int = DEFAULT_SEED) -> Job | None:
    return cache.job_registry().get(estimate_key(catalog.ref(name), n, k, seed))


def start(name: str, n: int = DEFAULT_IMAGES, k: int = DEFAULT_K, seed: int = DEFAULT_SEED) -> Job | None:
    """Start (or find) the estimate of run `name`; None if the run or its data cannot be loaded."""
    ref = catalog.ref(name)
    try:
        run = cache.run(ref)
        x, _ = cache.test_set(run.config.dataset, run.config.likelihood)
    except (CheckpointError, DataError):
        return None
    return start_estimate(run.model, x, ref, n, k, seed)


def finished(name: str, n: int = DEFAULT_IMAGES, k: int = DEFAULT_K, seed: int = DEFAULT_SEED):
    """The run's finished estimate, or None while it runs, failed or was never asked for."""
    j = job(name, n, k, seed)
    if j is None or j.running or j.error is not None:
        return None
    return j.result.estimate


def bounds_table(names, n: int = DEFAULT_IMAGES, k: int = DEFAULT_K, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Per run with a finished estimate: ELBO, L_5, L_50, log p(x) and gap, means over the same first n images."""
    rows = []
    for name in names:
        est = finished(name, n, k, seed)
        if est is None:
            continue
        curve = est.iwae_curve()
        lk = dict(zip(curve["k"], curve["mean"]))
        s = est.summary()
        rows.append({"run": name, "images": est.num_images, "ELBO": s["elbo"], "L_5": lk.get(5, np.nan),
                     "L_50": lk.get(50, np.nan), f"log p(x), K = {est.k}": s["log_px"], "gap": s["gap"],
                     "gap stderr": s["gap_stderr"]})
    return pd.DataFrame(rows)


def _per_image(est, what: str) -> np.ndarray:
    """One of an estimate's per-image numbers by its label: ELBO, L_k (one of its curve's k), log p(x) or gap."""
    if what.startswith("L_"):
        return est.iwae[:, est.iwae_ks.index(int(what[2:]))]
    return {"ELBO": est.elbo, "log p(x)": est.log_px, "gap": est.gap}[what]


def paired_table(reference: str, names, n: int = DEFAULT_IMAGES, k: int = DEFAULT_K,
                 seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Each run minus `reference`, image by image on the same first n test images: the mean difference of the ELBO,
    L_5, L_50, log p(x) and the gap, each ± its paired standard error (mc_error.paired). Runs without a finished
    estimate are left out."""
    from vae_tf.mc_error import paired

    ref = finished(reference, n, k, seed)
    rows = []
    for name in names:
        est = finished(name, n, k, seed)
        if name == reference or est is None or ref is None:
            continue
        row = {"run": name, "minus": reference, "images": min(est.num_images, ref.num_images)}
        for what in ("ELBO", "L_5", "L_50", "log p(x)", "gap"):
            if what.startswith("L_") and not (int(what[2:]) in est.iwae_ks and int(what[2:]) in ref.iwae_ks):
                continue
            d = paired(_per_image(est, what), _per_image(ref, what))
            row[f"Δ {what}"], row[f"± Δ {what}"] = d.mean, d.stderr
        rows.append(row)
    return pd.DataFrame(rows)


PAIRED_CAPTION = ("Differences image by image on the same test images, ± their paired standard error sd(dᵢ)/√n "
                  "(dᵢ one image's difference): it covers the choice of images and the sampling, and leaves out what "
                  "the two runs share (how hard each image is), so it is much smaller than the runs' own errors "
                  "combined. A difference more than about twice its error is unlikely to be chance.")


# -- tables ------------------------------------------------------------------------------------------
def _mean_se(a) -> tuple[float, float]:
    a = np.asarray(a, np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")


def summary_table(result: LogPxResult, grid: GridAnswers | None = None, ppca: np.ndarray | None = None) -> pd.DataFrame:
    """The page's summary: means over images ± standard errors over images. ppca: probabilistic PCA's log p(x) of the
    same images (linear-Gaussian runs), the optimum their training should reach."""
    est = result.estimate
    n = est.num_images
    rows = [("ELBO (analytic KL; E_q[log p(x|z)] from the K draws)", *_mean_se(est.elbo), n),
            (f"log p(x), importance sampling, K = {est.k}", *_mean_se(est.log_px), n),
            (f"gap L_K − ELBO, a lower estimate of KL(q(z|x) ‖ p(z|x)), K = {est.k}", *_mean_se(est.gap), n),
            (f"effective sample size of the K = {est.k} weights", *_mean_se(est.ess), n)]
    if est.pareto_k is not None and np.isfinite(est.pareto_k).any():
        kh = est.pareto_k[np.isfinite(est.pareto_k)]
        rows.append((f"Pareto k̂ of the weights: > 0.7 (unreliable) on {int(est.unreliable.sum())} of {n} images",
                     *_mean_se(kh), len(kh)))
    if est.elbo_same_draws is not None:
        rows.append(("ELBO from the same K draws, mean of log w (charts a, b)", *_mean_se(est.elbo_same_draws), n))
    if result.exact is not None:
        rows += [("exact log p(x) (closed form)", *_mean_se(result.exact), n),
                 ("importance-sampling error, log p̂(x) − exact", *_mean_se(est.log_px - result.exact), n)]
        if result.exact_kl is not None:
            rows.append(("exact KL(q(z|x) ‖ p(z|x)) = exact log p(x) − ELBO (closed form)",
                         *_mean_se(result.exact_kl), n))
    if ppca is not None:
        rows.append(("PPCA maximum likelihood log p(x) (closed form, from the training covariance)", *_mean_se(ppca),
                     len(ppca)))
        if result.exact is not None:
            rows.append(("exact log p(x) − PPCA's, image by image", *_mean_se(result.exact - ppca), len(ppca)))
    if grid is not None and len(grid):
        m, what = len(grid), "grid" if grid.method == "grid" else "quadrature"
        rows += [(f"{what} log p(x), first {m} images ({int(grid.converged.sum())} of {m} converged)",
                  *_mean_se(grid.log_px), m),
                 (f"importance-sampled log p(x), same {m} images", *_mean_se(est.log_px[:m]), m),
                 (f"ELBO, same {m} images", *_mean_se(est.elbo[:m]), m),
                 (f"{what} KL(q(z|x) ‖ p(z|x)), same {m} images", *_mean_se(grid.kl), m)]
    return pd.DataFrame(rows, columns=["quantity", "mean (nats/image)", "standard error", "images"])


def per_image_table(result: LogPxResult, labels, label_name, grid: GridAnswers | None = None) -> pd.DataFrame:
    """One row per image; log_px_mc_stderr is log p̂'s Monte-Carlo standard error, gap = log_px − elbo
    (analytic KL), gap_same_draws = log_px − elbo_same_draws (≥ 0)."""
    est = result.estimate
    n = est.num_images
    df = pd.DataFrame({"test_index": np.arange(n), "elbo": est.elbo, "log_px": est.log_px, "gap": est.gap,
                       "log_px_mc_stderr": est.log_px_mc_stderr, "ess": est.ess})
    if est.elbo_same_draws is not None:
        df["elbo_same_draws"], df["gap_same_draws"] = est.elbo_same_draws, est.gap_same_draws
    if est.pareto_k is not None:
        from vae_tf.mc_error import reason

        df["pareto_k"] = est.pareto_k
        df["unreliable"] = est.unreliable
        df["reliability"] = [reason(float(v), est.k) for v in est.pareto_k]
    if labels is not None:
        df.insert(1, "label", [label_name(v) for v in np.asarray(labels)[:n]])
    if result.exact is not None:
        df["exact_log_px"] = result.exact
        if result.exact_kl is not None:
            df["exact_kl_q_posterior"] = result.exact_kl
    if grid is not None and len(grid):
        pad = lambda a, fill=np.nan: np.concatenate([a, np.full(n - len(a), fill)])  # noqa: E731
        df["grid_log_px"], df["grid_kl_q_posterior"] = pad(grid.log_px), pad(grid.kl)
        df["grid_converged"] = pad(grid.converged.astype(float))
    return df
