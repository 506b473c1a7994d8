"""Are the error bars right? log p̂_K's reported standard error against its spread over independent seeds.

On the shipped fashion-default run's first 20 test images at K = 2000, 16 seeds (seed s draws its own K
weights per image): the pooled ratio √(Σ_i SD_i² / Σ_i mean_s SE_is²) of the seed-to-seed SD to the reported
SE, which should be near 1, and the share of the 320 (seed, image) estimates within ±2 SE of their image's
mean over seeds, which should be near 95 %. The same for the delta method √(1/ESS − 1/K) on the same draws:
the error bar before mc_error's fit.
"""
from __future__ import annotations

import math
import time

import numpy as np

TARGET_RATIO, TARGET_COVER = (0.7, 1.4), 0.88


def calibration(lp: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """(pooled SD-over-seeds / SE, share within ±2 SE of the seeds' mean) for lp, se of shape (seeds, images)."""
    sd = lp.std(0, ddof=1)
    return (math.sqrt(np.sum(sd ** 2) / np.sum(np.mean(se ** 2, 0))),
            float(np.mean(np.abs(lp - lp.mean(0)) <= 2 * se)))


def run_calibration(ds, quick: bool, res: dict):
    from vae_tf import mc_error
    from vae_tf.config import Config
    from vae_tf.estimators import estimate_log_px

    from .sampling import bench_model

    model, which = bench_model(Config(), ds.num_pixels)
    n, k, seeds = (20, 500, 8) if quick else (20, 2000, 16)
    x = ds.test_images("bernoulli")[:n]
    t = time.perf_counter()
    ests = [estimate_log_px(model, x, k=k, seed=s) for s in range(seeds)]
    lp = np.stack([e.log_px for e in ests])
    after = calibration(lp, np.stack([e.log_px_mc_stderr for e in ests]))
    before = calibration(lp, np.stack([mc_error.delta_method_stderr(e.ess, k) for e in ests]))
    k_hat = np.stack([e.pareto_k for e in ests])
    res.update(calib_images=n, calib_k=k, calib_seeds=seeds, calib_ratio=after[0], calib_cover=after[1],
               calib_delta_ratio=before[0], calib_delta_cover=before[1],
               calib_unreliable_share=float(np.mean(k_hat > mc_error.PARETO_K_UNRELIABLE)),
               calib_seconds=time.perf_counter() - t)
    print(f"error bars: {which}, first {n} test images, K = {k}, {seeds} seeds ({res['calib_seconds']:.0f} s)")
    print(f"  {'':<34}{'SD/SE pooled':>14}{'±2 SE covers':>14}")
    print(f"  {'delta method √(1/ESS − 1/K)':<34}{before[0]:14.2f}{before[1]:14.1%}")
    print(f"  {'vae_tf (groups spread, fitted)':<34}{after[0]:14.2f}{after[1]:14.1%}")
    print(f"  Pareto k̂ > 0.7 on {res['calib_unreliable_share']:.0%} of the (seed, image) estimates\n")
