"""How far to trust an importance-sampled log p̂_K(x) = log (1/K) Σ_k w_k: the Pareto k̂ of its weights.

Pareto k̂ (Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto Smoothed Importance Sampling", JMLR 2024):
fit a generalised Pareto distribution to the largest M weights (M = 3√K, or K/5 for K ≤ 225); its shape
k says how many moments the weights have, E[w^a] < ∞ for a < 1/k. k̂ < 0.5: a finite variance, the
central limit theorem applies; 0.5–0.7: a finite mean, slow convergence; k̂ > 0.7: in practice the
estimate's variance is infinite, it is biased low for any feasible K, and its standard error means nothing.
"""
from __future__ import annotations

import numpy as np

PARETO_K_UNRELIABLE = 0.7  # above this the estimate and its error bar cannot be trusted (Vehtari et al.)
PARETO_K_SLOW = 0.5  # above this the weights' variance is infinite: slow convergence
MIN_K_PARETO = 25  # the tail fit needs M = K/5 ≥ 5 weights


def pareto_k(lw) -> np.ndarray:
    """k̂ of each image's K importance weights, from log-weights lw (K, N): (N,), NaN where K < 25 or the
    largest weights are all equal (nothing to fit: a proposal proportional to the target).

    arviz-stats' psislw is written for PSIS-LOO, whose ratios are 1/p(y|θ): it negates what it is given,
    so it gets −log w. (Its pareto_khat with log_weights=True fits the log-weights themselves, not w.)"""
    from arviz_stats.base import array_stats  # scipy: loaded when an estimate first needs it

    lw = np.asarray(lw, np.float64)
    out = np.full(lw.shape[1], np.nan)
    if lw.shape[0] < MIN_K_PARETO:
        return out
    with np.errstate(all="ignore"):  # a degenerate tail divides by zero inside the fit; its k̂ is dropped
        for i in range(lw.shape[1]):
            try:
                out[i] = float(array_stats.psislw(-lw[:, i], r_eff=1.0)[1])  # r_eff = 1: independent draws
            except ValueError:  # "All tail values are the same"
                pass
    out[~np.isfinite(out)] = np.nan
    return out


def unreliable(k_hat) -> np.ndarray:
    """Images whose estimate cannot be trusted: k̂ > 0.7 (NaN, not estimated, is not flagged)."""
    k_hat = np.asarray(k_hat, np.float64)
    return np.nan_to_num(k_hat, nan=-np.inf) > PARETO_K_UNRELIABLE


def reason(k_hat: float, k: int) -> str:
    """One line saying how far one image's estimate can be trusted, for a hover or a table."""
    if not np.isfinite(k_hat):
        return (f"k̂ not available: K = {k} is below {MIN_K_PARETO}" if k < MIN_K_PARETO
                else "k̂ not available: the largest weights are all equal")
    if k_hat > PARETO_K_UNRELIABLE:
        return (f"unreliable: Pareto k̂ = {k_hat:.2f} > {PARETO_K_UNRELIABLE}, the weights' variance is in effect "
                "infinite, so the estimate is likely too low and its error bar means nothing")
    if k_hat > PARETO_K_SLOW:
        return f"slow: Pareto k̂ = {k_hat:.2f} (0.5–0.7), the weights' variance is infinite but their mean converges"
    return f"reliable: Pareto k̂ = {k_hat:.2f} < 0.5"
