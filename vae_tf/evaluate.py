"""What `python -m vae_tf evaluate` and the log p(x) page report: the importance-sampled log p(x) with
its ELBO and gap (L_K − ELBO, a lower estimate of KL(q ‖ p(z|x))), and beside it the exact answer
(linear-Gaussian model) or the numerical integral (a grid for a 2-D latent, quadrature for a 1-D one)
where the model has one. The field names of evaluate_run's dict are the CLI's public --json.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from . import runs
from .data import load_dataset
from .diagnostics import diagnose
from .estimators import Estimate, estimate_log_px
from .exact import exact_answer, exact_kl_q_posterior, exact_log_px, has_closed_form
from .ladder import add_fields

SPLITS = ("test", "train")


def evaluate(model, x, k: int = 1000, seed: int = 0, grid_images: int = 50, **kw) -> tuple[Estimate, dict]:
    """The importance-sampling estimate, plus the exact answer where the model has one: the closed form
    (linear-Gaussian), or a numerical integral over z for the first grid_images images (a grid for a 2-D
    latent, quadrature for a 1-D one), each with its KL(q(z|x) ‖ p(z|x))."""
    x = np.asarray(x, np.float32)
    est = estimate_log_px(model, x, k=k, seed=seed, **kw)
    out = est.summary()
    n = est.num_images  # fewer than len(x) if the estimate was stopped
    if has_closed_form(model):
        exact = exact_log_px(model, x[:n])
        out.update(exact_log_px=float(exact.mean()),
                   exact_log_px_stderr=float(exact.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
                   exact_kl_q_posterior=float(exact_kl_q_posterior(model, x[:n]).mean()))
    if model.config.latent_dim in (1, 2) and grid_images > 0:
        m = min(n, grid_images)
        answers = [exact_answer(model, xi) for xi in x[:m]]
        out.update(grid_log_px=float(np.mean([a.log_px for a in answers])), grid_num_images=m,
                   log_px_same_images=float(est.log_px[:m].mean()),
                   grid_kl_q_posterior=float(np.mean([a.kl_q_posterior for a in answers])),
                   grid_converged=int(sum(a.converged for a in answers)),
                   grid_method="grid" if model.config.latent_dim == 2 else "quadrature")
    return est, out


def evaluate_run(run_dir: Path | str | runs.RunRef, num_images: int = 1000, k: int = 1000, seed: int = 0,
                 strategy: tf.distribute.Strategy | None = None, data: str | None = None, split: str = "test",
                 on_progress: Callable[[int, int, float], None] | None = None,
                 on_start: Callable[[int, int], None] | None = None, per_image: bool = False,
                 estimator: str = "is", ais_steps: int = 500, ais_chains: int = 16, gap_anatomy: bool = False,
                 gap_full: bool = False, bdmc: bool = False, bdmc_images: int = 16,
                 on_stage: Callable[[str, int, int], None] | None = None) -> dict:
    """evaluate() on the first num_images images of a run's data set (its own unless `data` names
    another), as one dict: checkpoint, split, devices, then evaluate()'s fields. Floats may be NaN
    (a standard error of one image); the CLI prints those as null. on_start(images, devices) is called
    once the images are known, before the estimate. per_image adds "per_image", one dict per image (per_image_rows).
    estimator "ais" makes AIS (ais_steps temperatures × ais_chains chains) the log_px; gap_anatomy adds q*'s ELBO and
    the amortization and approximation gaps (gap_full: a full-covariance q*); bdmc adds the BDMC sandwich on
    bdmc_images images simulated from the model (ladder.add_fields; on_stage(stage, done, total) hears each).

    With a MirroredStrategy the model is built in its scope, so it has its weights on every device,
    and the images of every batch are split over them. Each image's draws are keyed by its index, so
    the estimate is the one-device estimate, computed in parallel."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        run = runs.load_run(run_dir)
    dataset = load_dataset(data or run.config.dataset)
    if dataset.num_pixels != run.model.num_pixels:
        raise ValueError(f"{dataset.name} images have {dataset.num_pixels} pixels; "
                         f"the run was trained on {run.model.num_pixels}")
    images = dataset.test_images if split == "test" else dataset.train_images
    x = images(run.config.likelihood)[:num_images]
    devices = strategy.num_replicas_in_sync
    if on_start:
        on_start(len(x), devices)
    est, out = evaluate(run.model, x, k=k, seed=seed, on_progress=on_progress, strategy=strategy)
    if len(x) > 1:  # active units, KL per dimension, I(x; z) and KL(q(z) ‖ p(z)) of the same images
        out.update(diagnose(run.model, x, seed=seed).fields())
    checkpoint = run_dir.path if isinstance(run_dir, runs.RunRef) else Path(run_dir)
    result = {"checkpoint": str(checkpoint), "split": split, "devices": devices, **out}
    if per_image:
        result["per_image"] = per_image_rows(run.model, x, est)
    return add_fields(run.model, x, result, est, estimator=estimator, ais_steps=ais_steps, ais_chains=ais_chains,
                      gap_anatomy=gap_anatomy, full=gap_full, bdmc=bdmc, bdmc_images=bdmc_images, seed=seed,
                      per_image=per_image, progress=on_stage)


def per_image_rows(model, x, est: Estimate) -> list[dict]:
    """One dict per image, the CLI's stable names: index, log_px (log p̂_K), log_px_stderr (its Monte-Carlo
    standard error), elbo (analytic KL), gap (log_px − elbo: L_K − ELBO), elbo_same_draws and gap_same_draws (from
    the same K draws, gap ≥ 0), ess, pareto_k (NaN: not estimated), unreliable (k̂ > 0.7), and exact_log_px with
    exact_kl_q_posterior where the model has a closed form."""
    n = est.num_images
    cols = {"log_px": est.log_px, "log_px_stderr": est.log_px_mc_stderr, "elbo": est.elbo, "gap": est.gap,
            "elbo_same_draws": est.elbo_same_draws, "gap_same_draws": est.gap_same_draws, "ess": est.ess,
            "pareto_k": est.pareto_k}
    if has_closed_form(model):
        cols.update(exact_log_px=exact_log_px(model, x[:n]), exact_kl_q_posterior=exact_kl_q_posterior(model, x[:n]))
    flags = est.unreliable
    return [{"index": i, **{name: float(v[i]) for name, v in cols.items()}, "unreliable": bool(flags[i])}
            for i in range(n)]
