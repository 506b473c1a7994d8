"""How far to trust an importance-sampled log p̂_K(x) = log (1/K) Σ_k w_k: the Pareto k̂ of its weights, its
Monte-Carlo standard error, and the paired difference of two runs on the same images.

Pareto k̂ (Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto Smoothed Importance Sampling", JMLR 2024):
fit a generalised Pareto distribution to the largest M weights (M = 3√K, or K/5 for K ≤ 225); its shape
k says how many moments the weights have, E[w^a] < ∞ for a < 1/k. k̂ < 0.5: a finite variance, the
central limit theorem applies; 0.5–0.7: a finite mean, slow convergence; k̂ > 0.7: in practice the
estimate's variance is infinite, it is biased low for any feasible K, and its standard error means nothing.

The standard error: the delta method, Var(log p̂_K) ≈ Var(w)/(K·E[w]²) = 1/ESS − 1/K, assumes the central
limit theorem at K and plugs in the sample variance of w. Importance weights of a VAE are heavy-tailed
(k̂ ≈ 0.5–1 is common): the sample variance misses the rare large weights, and the spread of log p̂ shrinks
more slowly than K^(−½). So the error is measured instead: the K draws are cut into ⌊K/k⌋ disjoint groups of
k at each level k = 2, 5, 10, 20, … up to K/4 (at least 4 groups); each group's log p̂_k is an independent
draw of the k-sample estimator, so the groups' spread is its standard deviation sd(k), measured. log sd(k)
is fitted by a line in log k (least squares weighted by each level's degrees of freedom, ⌊K/k⌋ − 1, over
the levels k ≥ K/500), sd(k) ≈ c·k^(−γ), and extended to k = K: SE(log p̂_K) = c·K^(−γ). γ is clipped to
[0, ½]: ½ is the central limit theorem's rate, 0 no improvement with more draws. Heavy tails show as a
small γ (the generalised central limit theorem gives γ = 1 − k for 0.5 < k < 1), and the bar widens to
match. This is the standard deviation of log p̂_K over repeats; the estimate's bias (E[log p̂_K] ≤ log p(x)
by Jensen) is not in it: k̂ says when the bias may be large.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PARETO_K_UNRELIABLE = 0.7  # above this the estimate and its error bar cannot be trusted (Vehtari et al.)
PARETO_K_SLOW = 0.5  # above this the weights' variance is infinite: slow convergence
MIN_K_PARETO = 25  # the tail fit needs M = K/5 ≥ 5 weights
MIN_GROUPS = 4  # a level's spread is measured from at least this many disjoint groups
FIT_FROM = 1 / 500  # the fit's smallest level, as a share of K (below it the spread shrinks faster)


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


# -- the standard error of log p̂_K, from the spread of disjoint groups -----------------------------------------
@dataclass
class SpreadFit:
    """log sd(k) = log_sd − γ·(log k − log_k) per image: the power law fitted to the groups' spreads."""
    log_k: float  # the weighted mean of log k over the fitted levels
    log_sd: np.ndarray  # (N,) the weighted mean of log sd(k) there
    gamma: np.ndarray  # (N,) in [0, ½]
    levels: tuple[int, ...]  # the levels fitted

    def sd(self, k: float) -> np.ndarray:
        """(N,) the standard deviation of one k-draw estimate log p̂_k, from the fit."""
        return np.exp(self.log_sd - self.gamma * (math.log(k) - self.log_k))


def fit_spread(groups: dict[int, np.ndarray], K: int) -> SpreadFit | None:
    """The power law sd(k) ≈ c·k^(−γ) fitted to the spread of the group estimates groups[k] ((⌊K/k⌋, N) each:
    log p̂_k of disjoint groups of k of the K draws) at the levels K/500 ≤ k ≤ K/4, k ≥ 2; None if fewer than
    two levels qualify (K < 20)."""
    levels = tuple(sorted(k for k in groups if k >= max(2, FIT_FROM * K) and K // k >= MIN_GROUPS))
    if len(levels) < 2:
        return None
    x = np.log(np.array(levels, np.float64))
    dof = np.array([K // k - 1 for k in levels], np.float64)  # Var(log sd̂) ≈ 1/(2·dof) for each level
    with np.errstate(divide="ignore"):
        y = np.log(np.maximum(np.stack([groups[k].std(0, ddof=1) for k in levels]), np.finfo(float).tiny))
    xm = float(np.sum(dof * x) / dof.sum())
    ym = np.sum(dof[:, None] * y, 0) / dof.sum()
    slope = np.sum(dof[:, None] * (x - xm)[:, None] * (y - ym), 0) / np.sum(dof * (x - xm) ** 2)
    return SpreadFit(xm, ym, np.clip(-slope, 0.0, 0.5), levels)


def bound_variances(groups: dict[int, np.ndarray], K: int, fit: SpreadFit | None) -> dict[int, np.ndarray]:
    """Var of each L̂_k = the mean of its ⌊K/k⌋ group estimates: sd(k)²/⌊K/k⌋, with sd(k) from the fit wherever
    k is at or above the fit's first level (up to k = K, where one group is log p̂_K itself), and measured
    from the many groups below it. (N,) each, NaN where neither exists."""
    out = {}
    for k, g in groups.items():
        m = K // k
        if fit is not None and k >= fit.levels[0]:
            sd = fit.sd(k)
        else:
            sd = g.std(0, ddof=1) if m > 1 else np.full(g.shape[1], np.nan)
        out[k] = sd ** 2 / m
    return out


def delta_method_stderr(ess, k: int) -> np.ndarray:
    """The delta method's √(1/ESS − 1/K): what this module's fit replaced; kept to compare against."""
    ess = np.asarray(ess, np.float64)
    return np.sqrt(np.maximum(1 / ess - 1 / k, 0)) if k > 1 else np.full(ess.shape, np.nan)


# -- two runs on the same images ------------------------------------------------------------------------------
@dataclass
class Paired:
    """mean over images of d_i = a_i − b_i for two runs' numbers on the same images, with its paired standard
    error sd(d)/√n: it covers both the choice of images and each image's Monte-Carlo error (which is in d_i),
    and leaves out what the two runs share image by image (how hard each image is), unlike √(SE_a² + SE_b²)."""
    mean: float
    stderr: float
    n: int

    def text(self, digits: int = 2) -> str:
        return f"{self.mean:+.{digits}f} ± {self.stderr:.{digits}f}"


def paired(a, b) -> Paired:
    """The paired difference of a and b, per-image numbers of two runs on the same first images (the longer is cut
    to the shorter: an estimate stopped early covers fewer)."""
    n = min(len(a), len(b))
    d = np.asarray(a[:n], np.float64) - np.asarray(b[:n], np.float64)
    return Paired(float(d.mean()), float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"), n)
