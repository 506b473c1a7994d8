"""How good is the model, and how far is q(z|x) from the true posterior?

    log p(x) = ELBO(x) + KL(q(z|x) ‖ p(z|x))

Importance sampling with a proposal r(z|x) (q itself by default, as in IWAE):

    log p̂_K(x) = logsumexp_k [log p(x|z_k) + log p(z_k) − log r(z_k|x)] − log K,   z_k ~ r(z|x)

E[log p̂_K] is the IWAE bound L_K (Burda et al.): ELBO = L_1 ≤ L_2 ≤ … ≤ log p(x). So log p̂_K − ELBO
estimates L_K − ELBO, a lower estimate of the gap KL(q ‖ p(z|x)) = log p(x) − ELBO, never the KL itself.
From one set of draws, log p̂_K = log mean w ≥ mean log w (Jensen on the K draws): the same-draw ELBO.
How far to trust each image's log p̂ (its Pareto k̂, its standard error) is in mc_error.py; the exact
answers to check these against are in exact.py; evaluate.py puts them together.
"""
from __future__ import annotations

import math
import numbers
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from . import mc_error
from .draws import ROWS_PER_CALL, Cancelled, image_batches, log_terms, log_terms_mirrored, power_parts, q_fn, spans

tfd = tfp.distributions

IWAE_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
MAX_K = 50_000


# -- the ELBO -----------------------------------------------------------------------------
@dataclass
class ElboResult:
    elbo: np.ndarray  # (N,) per image
    recon: np.ndarray  # E_q[log p(x|z)], S-sample average
    kl: np.ndarray  # KL(q ‖ p(z)), analytic or S-sample average
    elbo_mc_stderr: np.ndarray  # Monte-Carlo standard error of each image's ELBO (NaN for S = 1)
    kl_mc: np.ndarray  # the S-sample Monte-Carlo KL, always, for comparison
    kl_mc_stderr: np.ndarray


def elbo(model, x, num_samples: int = 1, analytic_kl: bool = True, seed: int = 0, batch: int = 1000,
         rows_per_call: int = ROWS_PER_CALL, max_weights: int = 2**22, first_index: int = 0) -> ElboResult:
    """Per-image ELBO = E_q[log p(x|z)] − KL(q ‖ p(z)), the expectation from S samples.

    With analytic_kl the KL is ½ Σ (μ² + s² − log s² − 1) exactly (tfd.kl_divergence);
    otherwise the S-sample average of log q(z|x) − log p(z). The S draws of image i are the
    first S of estimate_log_px's draws with the same seed (z = μ + s·ε, ε from image_noise)."""
    x = np.asarray(x, np.float32)
    S, d = int(num_samples), model.config.latent_dim
    if S < 1:
        raise ValueError(f"num_samples must be at least 1; got {num_samples}")
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty (N, pixels) array; got shape {x.shape}")
    se = lambda a: a.std(0, ddof=1) / math.sqrt(S) if S > 1 else np.full(a.shape[1], np.nan)  # noqa: E731
    sizes = power_parts(len(x), max(1, min(batch, rows_per_call, max_weights // (S * (d + 6)))))  # noise + (S, B) terms
    parts = []
    for i, step in spans(sizes):
        loc, scale, kl = q_fn(model)(tf.constant(x[i:i + step]))
        ll, mc_kl = log_terms(model, x[i:i + step], S, (loc, scale), seed, first_index + i, rows_per_call)
        kl = mc_kl.mean(0) if not analytic_kl else kl.numpy().astype(np.float64)
        terms = ll if analytic_kl else ll - mc_kl  # what the ELBO averages, up to a constant
        parts.append((ll.mean(0) - kl, ll.mean(0), kl, se(terms), mc_kl.mean(0), se(mc_kl)))
    return ElboResult(*(np.concatenate([p[j] for p in parts]) for j in range(6)))


# -- importance sampling ----------------------------------------------------------------------
@dataclass
class Estimate:
    """Per-image importance-sampling results for N images, K samples each."""
    log_px: np.ndarray  # (N,) log p̂_K(x)
    elbo: np.ndarray  # (N,) ELBO, analytic KL (recon averaged over the K draws when r = q; else 1000 draws of q)
    ess: np.ndarray  # (N,) effective sample size (Σw)² / Σw² of the K weights
    log_px_mc_stderr: np.ndarray  # (N,) MC standard error of log p̂ (mc_error: the groups' spread, extended to K)
    iwae_ks: tuple[int, ...]
    iwae: np.ndarray  # (N, len(ks)) L_k estimated from ⌊K/k⌋ disjoint groups of the same draws
    iwae_mc_var: np.ndarray  # (N, len(ks)) MC variance of those per-image estimates, one estimator for every k
    k: int
    proposal: str
    seconds: float
    cancelled: bool = False
    pareto_k: np.ndarray | None = None  # (N,) Pareto k̂ of each image's K weights (mc_error.pareto_k; NaN: none)
    elbo_same_draws: np.ndarray | None = None  # (N,) (1/K) Σ log w_k: the ELBO from the very draws of log p̂

    @property
    def gap(self) -> np.ndarray:
        """log p̂_K − ELBO (analytic KL): estimates L_K − ELBO, a lower estimate of KL(q ‖ p(z|x)) (L_K ≤ log p(x)).
        The better number on average (no sampled KL), but an image's value can be negative."""
        return self.log_px - self.elbo

    @property
    def gap_same_draws(self) -> np.ndarray:
        """log p̂_K − (1/K) Σ log w: the same L_K − ELBO from one set of draws, ≥ 0 image by image (a log of a
        mean is at least the mean of the logs)."""
        return self.log_px - self.elbo_same_draws

    @property
    def num_images(self) -> int:
        return len(self.log_px)

    @property
    def unreliable(self) -> np.ndarray:
        """(N,) bool: the images whose k̂ > 0.7, whose estimate and error bar cannot be trusted."""
        return mc_error.unreliable(self.pareto_k if self.pareto_k is not None else np.full(self.num_images, np.nan))

    def summary(self) -> dict:
        """Means over images with standard errors (over images, so they cover the choice of images)."""
        n = max(self.num_images, 1)
        se = lambda a: float(np.std(a, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")  # noqa: E731
        return {"elbo": float(np.mean(self.elbo)), "elbo_stderr": se(self.elbo),
                "log_px": float(np.mean(self.log_px)), "log_px_stderr": se(self.log_px),
                "gap": float(np.mean(self.gap)), "gap_stderr": se(self.gap),
                "ess_mean": float(np.mean(self.ess)), "num_images": self.num_images, "k": self.k,
                "proposal": self.proposal, "seconds": self.seconds, "cancelled": self.cancelled,
                "unreliable_images": int(self.unreliable.sum()),
                "elbo_same_draws": float(np.mean(self.elbo_same_draws)),
                "elbo_same_draws_stderr": se(self.elbo_same_draws),
                "gap_same_draws": float(np.mean(self.gap_same_draws)), "gap_same_draws_stderr": se(self.gap_same_draws)}

    def iwae_curve(self) -> dict:
        """Data-set mean of L_k for each k, with its Monte-Carlo standard error (the images held fixed)."""
        n = max(self.num_images, 1)
        return {"k": list(self.iwae_ks), "mean": self.iwae.mean(0).tolist(),
                "mc_stderr": (np.sqrt(self.iwae_mc_var.sum(0)) / n).tolist(),
                "image_stderr": (self.iwae.std(0, ddof=1) / math.sqrt(n) if n > 1
                                 else np.full(len(self.iwae_ks), np.nan)).tolist()}


def proposal_params(model, x, proposal="posterior"):
    """(loc (N,d), scale) of the proposal for each image: q(z|x), the prior, or a given MVN distribution
    (batch shape (N,) or (), e.g. the exact posterior of a linear-Gaussian model). scale is the diagonal
    (N,d) of a diagonal proposal, else the lower-triangular (N,d,d) of its covariance's Cholesky factor."""
    x = tf.convert_to_tensor(x, tf.float32)
    n, d = x.shape[0], model.config.latent_dim
    if isinstance(proposal, str) and proposal == "posterior":
        loc, scale, _ = q_fn(model)(x)
        return loc, scale
    if isinstance(proposal, str) and proposal == "prior":
        return tf.zeros([n, d]), tf.ones([n, d])
    if isinstance(proposal, tfd.Distribution) and hasattr(proposal, "scale") and proposal.event_shape == [d]:
        loc = tf.broadcast_to(tf.cast(proposal.loc, tf.float32), [n, d])
        if isinstance(proposal.scale, tf.linalg.LinearOperatorDiag):
            return loc, tf.broadcast_to(tf.cast(proposal.scale.diag, tf.float32), [n, d])
        return loc, tf.broadcast_to(tf.cast(proposal.scale.to_dense(), tf.float32), [n, d, d])
    raise ValueError(f"proposal must be 'posterior', 'prior' or a tfd.MultivariateNormalLinearOperator over "
                     f"{d} latent dimensions; got {proposal!r}")


def log_weights(model, x, k: int, proposal="posterior", seed: int = 0, first_index: int = 0,
                rows_per_call: int = ROWS_PER_CALL, params=None):
    """log w and log p(x|z), shape (K, N), float64, for images x, computed in chunks of samples."""
    params = params if params is not None else proposal_params(model, x, proposal)
    ll, rp = log_terms(model, x, k, params, seed, first_index, rows_per_call)
    return ll - rp, ll


def _slice_proposal(proposal, i: int, j: int, n: int):
    """This batch's part of a per-image proposal distribution (one for all images passes through)."""
    if not isinstance(proposal, tfd.Distribution) or proposal.batch_shape.rank == 0:
        return proposal
    if proposal.batch_shape.num_elements() != n:
        raise ValueError(f"the proposal has batch shape {proposal.batch_shape}; "
                         f"it needs one distribution per image ({n})")
    return proposal[i:j]


def estimate_log_px(model, x, k: int = 1000, proposal="posterior", seed: int = 0, ks=IWAE_KS,
                    rows_per_call: int = ROWS_PER_CALL, max_weights: int = 2**22,
                    on_progress: Callable[[int, int, float], None] | None = None,
                    stop: threading.Event | Callable[[], bool] | None = None,
                    strategy: tf.distribute.Strategy | None = None) -> Estimate:
    """Importance-sampled log p(x) for each image, with its ELBO, ESS and the IWAE bounds L_k
    for k in ks up to K (K itself included: L_K is log p̂_K's mean).

    Images go in batches small enough that the batch's K × B log-weights (≤ max_weights floats)
    and its noise fit in memory; decoder outputs exist only chunk by chunk. A stop request
    returns the images finished, marked cancelled (Cancelled if none was). With a MirroredStrategy of
    several devices (and the model built in its scope) each batch's images are split over them."""
    if not (isinstance(k, numbers.Real) and float(k).is_integer() and 1 <= k <= MAX_K):
        raise ValueError(f"k must be a whole number between 1 and {MAX_K}; got {k!r}")
    k = int(k)
    should_stop = stop.is_set if isinstance(stop, threading.Event) else (stop or (lambda: False))
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty (N, pixels) array; got shape {x.shape}")
    name = proposal if isinstance(proposal, str) else "given"
    if not isinstance(proposal, str):  # a bad proposal fails here, not mid-run (a bad name fails at the first batch)
        proposal_params(model, x[:1], _slice_proposal(proposal, 0, 1, len(x)))
    ks = tuple(sorted({int(kk) for kk in ks if 1 <= kk <= k} | {k}))
    sizes = image_batches(len(x), k, model.config.latent_dim, max_weights, rows_per_call)
    mirrored = strategy is not None and strategy.num_replicas_in_sync > 1
    t0, parts, cancelled = time.perf_counter(), [], False
    # A helper thread summarises a finished batch (float64 numpy) while TensorFlow computes the next.
    pool = ThreadPoolExecutor(1, thread_name_prefix="vae_tf-summary")
    try:
        for i, size in spans(sizes):
            xb = x[i:i + size]
            try:
                if should_stop():
                    raise Cancelled("stopped between batches")
                kl = None
                if name == "posterior":  # q's parameters and its exact KL(q ‖ p(z)) in one call
                    loc, scale, kl = q_fn(model)(tf.constant(xb))
                    params = loc, scale
                else:
                    params = proposal_params(model, xb, _slice_proposal(proposal, i, i + len(xb), len(x)))
                if mirrored:
                    ll, rp = log_terms_mirrored(model, xb, k, params, seed, i, rows_per_call, should_stop, strategy)
                else:
                    ll, rp = log_terms(model, xb, k, params, seed, i, rows_per_call, should_stop)
            except Cancelled:
                cancelled = True
                break
            parts.append(pool.submit(_summarise_weights, model, xb, ll - rp, ll, ks, name, seed, i, kl))
            if on_progress:
                on_progress(i + len(xb), len(x), time.perf_counter() - t0)
        parts = [p.result() for p in parts]
    finally:
        pool.shutdown(cancel_futures=True)
    if not parts:
        raise Cancelled("stopped before any image was done")
    cat = lambda j: np.concatenate([p[j] for p in parts])  # noqa: E731
    return Estimate(cat(0), cat(1), cat(2), cat(3), ks, cat(4), cat(5), k, name,
                    time.perf_counter() - t0, cancelled, pareto_k=cat(6), elbo_same_draws=cat(7))


def _log_px_and_ess(lw):
    """log p̂ = logsumexp(log w) − log K and ESS = (Σw)²/Σw² over axis 0, in float64."""
    lse = logsumexp(lw, 0)
    return lse - math.log(lw.shape[0]), np.exp(2 * lse - logsumexp(2 * lw, 0))


def _summarise_weights(model, x, lw, ll, ks, proposal, seed=0, first_index=0, kl=None):
    """One batch's per-image results from its log-weights lw (K, N) and log p(x|z) ll (K, N)."""
    K = lw.shape[0]
    log_px, ess = _log_px_and_ess(lw)
    # log p̂_k of ⌊K/k⌋ disjoint groups of k draws, at the curve's k and at the error fit's levels
    levels = sorted(set(ks) | {kk for kk in IWAE_KS if K // kk >= mc_error.MIN_GROUPS})
    groups = {kk: logsumexp(lw[: (K // kk) * kk].reshape(K // kk, kk, -1), 1) - math.log(kk) for kk in levels}
    fit = mc_error.fit_spread(groups, K)
    var = mc_error.bound_variances(groups, K, fit)
    stderr = np.sqrt(var[K]) if K > 1 else np.full(len(log_px), np.nan)
    iwae, var = [groups[kk].mean(0) for kk in ks], [var[kk] for kk in ks]
    if proposal == "posterior":  # E_q[log p(x|z)] from the K draws, KL exactly
        kl = q_fn(model)(tf.constant(x))[2] if kl is None else kl
        elbo_ = ll.mean(0) - np.asarray(kl, np.float64)
    else:
        elbo_ = elbo(model, x, num_samples=min(K, 1000), seed=seed, first_index=first_index).elbo
    return log_px, elbo_, ess, stderr, np.stack(iwae, 1), np.stack(var, 1), mc_error.pareto_k(lw), lw.mean(0)


def logsumexp(a, axis: int | None = None):
    """log Σ exp(a) along axis, in float64 (over all of a, as a float, if axis is None):
    m + log Σ exp(a − m) with m the maximum, so nothing overflows; an all −∞ slice gives −∞."""
    a = np.asarray(a, np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):  # log 0 = −∞ is the answer for an all −∞ slice
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return float(out.reshape(-1)[0]) if axis is None else np.squeeze(out, axis)
