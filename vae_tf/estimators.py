"""How good is the model, and how far is q(z|x) from the true posterior?

    log p(x) = ELBO(x) + KL(q(z|x) ‖ p(z|x))                       (the gap is the KL)

Importance sampling with a proposal r(z|x) (q itself by default, as in IWAE):

    log p̂_K(x) = logsumexp_k [log p(x|z_k) + log p(z_k) − log r(z_k|x)] − log K,   z_k ~ r(z|x)

E[log p̂_K] is the IWAE bound L_K (Burda et al.): ELBO = L_1 ≤ L_2 ≤ … ≤ log p(x).
Exact answers to check all this against: the closed form of a linear-Gaussian
model, and a grid integral over a 2-D latent.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

IWAE_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
MAX_K = 50_000
ROWS_PER_CALL = 8192  # decoder rows (samples × images) per compiled call: big matmuls, ~25 MB of logits


class Cancelled(Exception):
    """Raised inside an estimate when its stop request is set."""


# -- compiled pieces, one per model -------------------------------------------------------
def _compiled(model, key: str, build: Callable):
    cache = model.__dict__.setdefault("_compiled_fns", {})
    if key not in cache:
        cache[key] = build()
    return cache[key]


def _log_weight_fn(model):
    """(x (B,D), loc (B,d), scale_tril (B,d,d), eps (c,B,d)) → log w (c,B) and log p(x|z) (c,B)."""
    def fn(x, loc, scale_tril, eps):
        proposal = tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale_tril)
        z = proposal.bijector.forward(eps)  # z = loc + L·eps: a draw from the proposal
        log_lik = model.likelihood(z).log_prob(x)
        return log_lik + model.prior().log_prob(z) - proposal.log_prob(z), log_lik
    return _compiled(model, "log_w", lambda: tf.function(fn, reduce_retracing=True))


def _elbo_fn(model):
    def fn(x, seed, num_samples, analytic_kl):
        q = model.posterior(x)
        z = q.sample(num_samples, seed=seed)
        log_lik = model.likelihood(z).log_prob(x)  # (S, N)
        mc_kl = q.log_prob(z) - model.prior().log_prob(z)
        return log_lik, mc_kl, tfd.kl_divergence(q, model.prior())
    return _compiled(model, "elbo", lambda: tf.function(fn, reduce_retracing=True))


# -- the ELBO -----------------------------------------------------------------------------
@dataclass
class ElboResult:
    elbo: np.ndarray  # (N,) per image
    recon: np.ndarray  # E_q[log p(x|z)], S-sample average
    kl: np.ndarray  # KL(q ‖ p(z)), analytic or S-sample average
    elbo_mc_stderr: np.ndarray  # Monte-Carlo standard error of each image's ELBO
    kl_mc: np.ndarray  # the S-sample Monte-Carlo KL, always, for comparison
    kl_mc_stderr: np.ndarray


def elbo(model, x, num_samples: int = 1, analytic_kl: bool = True, seed: int = 0, batch: int = 1000) -> ElboResult:
    """Per-image ELBO = E_q[log p(x|z)] − KL(q ‖ p(z)), the expectation from S samples.

    With analytic_kl the KL is ½ Σ (μ² + s² − log s² − 1) exactly (tfd.kl_divergence);
    otherwise the S-sample average of log q(z|x) − log p(z)."""
    x = np.asarray(x, np.float32)
    fn, outs = _elbo_fn(model), []
    for i in range(0, len(x), batch):
        log_lik, mc_kl, kl = fn(x[i:i + batch], tf.constant([seed, i], tf.int32), num_samples, analytic_kl)
        outs.append((log_lik.numpy(), mc_kl.numpy(), kl.numpy()))
    log_lik = np.concatenate([o[0] for o in outs], 1).astype(np.float64)
    mc_kl = np.concatenate([o[1] for o in outs], 1).astype(np.float64)
    kl_exact = np.concatenate([o[2] for o in outs]).astype(np.float64)
    S = log_lik.shape[0]
    se = lambda a: a.std(0, ddof=1) / math.sqrt(S) if S > 1 else np.full(a.shape[1], np.nan)  # noqa: E731
    recon = log_lik.mean(0)
    kl = kl_exact if analytic_kl else mc_kl.mean(0)
    terms = log_lik if analytic_kl else log_lik - mc_kl
    return ElboResult(recon - kl, recon, kl, se(terms), mc_kl.mean(0), se(mc_kl))


# -- importance sampling ----------------------------------------------------------------------
@dataclass
class Estimate:
    """Per-image importance-sampling results for N images, K samples each."""
    log_px: np.ndarray  # (N,) log p̂_K(x)
    elbo: np.ndarray  # (N,) ELBO (analytic KL; recon averaged over the K draws when r = q)
    ess: np.ndarray  # (N,) effective sample size (Σw)² / Σw² of the K weights
    log_px_mc_stderr: np.ndarray  # (N,) delta-method MC error of log p̂: √(1/ESS − 1/K)
    iwae_ks: tuple[int, ...]
    iwae: np.ndarray  # (N, len(ks)) L_k estimated from ⌊K/k⌋ disjoint groups of the same draws
    iwae_mc_var: np.ndarray  # (N, len(ks)) MC variance of those per-image estimates
    k: int
    proposal: str
    seconds: float
    cancelled: bool = False

    @property
    def gap(self) -> np.ndarray:
        return self.log_px - self.elbo

    @property
    def num_images(self) -> int:
        return len(self.log_px)

    def summary(self) -> dict:
        """Means over images with standard errors (over images, so they cover the choice of images)."""
        n = max(self.num_images, 1)
        se = lambda a: float(np.std(a, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")  # noqa: E731
        return {"elbo": float(np.mean(self.elbo)), "elbo_stderr": se(self.elbo),
                "log_px": float(np.mean(self.log_px)), "log_px_stderr": se(self.log_px),
                "gap": float(np.mean(self.gap)), "gap_stderr": se(self.gap),
                "ess_mean": float(np.mean(self.ess)), "num_images": self.num_images, "k": self.k,
                "proposal": self.proposal, "seconds": self.seconds, "cancelled": self.cancelled}

    def iwae_curve(self) -> dict:
        """Data-set mean of L_k for each k, with its Monte-Carlo standard error (the images held fixed)."""
        n = max(self.num_images, 1)
        return {"k": list(self.iwae_ks), "mean": self.iwae.mean(0).tolist(),
                "mc_stderr": (np.sqrt(self.iwae_mc_var.sum(0)) / n).tolist(),
                "image_stderr": (self.iwae.std(0, ddof=1) / math.sqrt(n) if n > 1 else np.full(len(self.iwae_ks), np.nan)).tolist()}


def proposal_params(model, x, proposal="posterior"):
    """(loc, scale_tril) of the proposal for each image: q(z|x), the prior, or a given MVN distribution."""
    x = tf.convert_to_tensor(x, tf.float32)
    n, d = x.shape[0], model.config.latent_dim
    if proposal == "posterior":
        q = model.posterior(x)
        return q.loc, tf.linalg.diag(q.stddev())
    if proposal == "prior":
        return tf.zeros([n, d]), tf.eye(d, batch_shape=[n])
    if isinstance(proposal, tfd.Distribution):  # e.g. the exact posterior of a linear-Gaussian model
        return tf.cast(proposal.loc, tf.float32), tf.cast(proposal.scale.to_dense(), tf.float32)
    raise ValueError(f"proposal must be 'posterior', 'prior' or a tfd.MultivariateNormalLinearOperator; got {proposal!r}")


def image_noise(seed: int, image_index: int, k: int, d: int) -> np.ndarray:
    """The K standard-normal draws of one image: keyed by (seed, image index), so results do not
    depend on how images are batched or samples chunked."""
    return np.random.default_rng([seed, image_index]).standard_normal((k, d), dtype=np.float32)


def log_weights(model, x, k: int, proposal="posterior", seed: int = 0, first_index: int = 0,
                rows_per_call: int = ROWS_PER_CALL, params=None):
    """log w and log p(x|z), shape (K, N), for images x, computed in chunks of samples."""
    x = tf.convert_to_tensor(x, tf.float32)
    n, d = x.shape[0], model.config.latent_dim
    loc, tril = params if params is not None else proposal_params(model, x, proposal)
    eps = np.stack([image_noise(seed, first_index + i, k, d) for i in range(n)], axis=1)  # (K, N, d)
    chunk = max(1, rows_per_call // n)
    fn = _log_weight_fn(model)
    lw, ll = np.empty((k, n), np.float32), np.empty((k, n), np.float32)
    for s in range(0, k, chunk):
        a, b = fn(x, loc, tril, tf.constant(eps[s:s + chunk]))
        lw[s:s + chunk], ll[s:s + chunk] = a.numpy(), b.numpy()
    return lw, ll


def estimate_log_px(model, x, k: int = 1000, proposal="posterior", seed: int = 0, ks=IWAE_KS,
                    rows_per_call: int = ROWS_PER_CALL, max_weights: int = 2**22,
                    on_progress: Callable[[int, int, float], None] | None = None,
                    stop: threading.Event | Callable[[], bool] | None = None) -> Estimate:
    """Importance-sampled log p(x) for each image, with its ELBO, ESS and the IWAE bounds L_k.

    Images go in batches small enough that the batch's K × B log-weights (≤ max_weights floats)
    and its noise fit in memory; decoder outputs exist only chunk by chunk. A stop request
    returns what was finished, marked cancelled."""
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}; got {k}")
    should_stop = stop.is_set if isinstance(stop, threading.Event) else (stop or (lambda: False))
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty (N, pixels) array; got shape {x.shape}")
    name = proposal if isinstance(proposal, str) else "given"
    ks = tuple(kk for kk in ks if kk <= k)
    batch = max(1, min(len(x), max_weights // (k * (model.config.latent_dim + 2))))
    t0, parts, cancelled = time.perf_counter(), [], False
    for i in range(0, len(x), batch):
        if should_stop():
            cancelled = True
            break
        xb = x[i:i + batch]
        if isinstance(proposal, tfd.Distribution):  # a given per-image distribution: take this batch's slice
            params = proposal_params(model, xb, proposal[i:i + batch])
        else:
            params = proposal_params(model, xb, proposal)
        lw, ll = log_weights(model, xb, k, proposal, seed, i, rows_per_call, params)
        parts.append(_summarise_weights(model, xb, lw, ll, ks, name))
        if on_progress:
            on_progress(i + len(xb), len(x), time.perf_counter() - t0)
    if not parts:
        raise Cancelled("stopped before any image was done")
    cat = lambda j: np.concatenate([p[j] for p in parts])  # noqa: E731
    return Estimate(cat(0), cat(1), cat(2), cat(3), ks, cat(4), cat(5), k, name,
                    time.perf_counter() - t0, cancelled)


def _summarise_weights(model, x, lw, ll, ks, proposal):
    lw64 = lw.astype(np.float64)
    K = lw.shape[0]
    lse = _logsumexp(lw64, 0)
    log_px = lse - math.log(K)
    ess = np.exp(2 * lse - _logsumexp(2 * lw64, 0))
    stderr = np.sqrt(np.maximum(1 / ess - 1 / K, 0))
    iwae, var = [], []
    for kk in ks:
        m = K // kk
        groups = _logsumexp(lw64[: m * kk].reshape(m, kk, -1), 1) - math.log(kk)  # (m, N)
        iwae.append(groups.mean(0))
        # with one group, fall back on the delta method for the variance of log p̂_k
        var.append(groups.var(0, ddof=1) / m if m > 1 else stderr ** 2)
    if proposal == "posterior":  # E_q[log p(x|z)] from the K draws, KL exactly
        kl = tfd.kl_divergence(model.posterior(x), model.prior()).numpy().astype(np.float64)
        elbo_ = ll.astype(np.float64).mean(0) - kl
    else:
        elbo_ = elbo(model, x, num_samples=max(1, min(K, 1000))).elbo
    return log_px, elbo_, ess, stderr, np.stack(iwae, 1), np.stack(var, 1)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


# -- exact answers: the linear-Gaussian model ----------------------------------------------------
def has_closed_form(model) -> bool:
    return model.config.decoder == "linear" and model.config.likelihood == "gaussian"


def _linear_params(model):
    if not has_closed_form(model):
        raise ValueError("a closed-form log p(x) needs the linear decoder with a Gaussian likelihood")
    W, b = model.linear_decoder()
    return tf.cast(W, tf.float64), tf.cast(b, tf.float64), tf.cast(model.sigma, tf.float64)


def exact_log_px(model, x) -> np.ndarray:
    """x = Wz + b + σε with z ~ N(0, I): p(x) = N(x; b, WWᵀ + σ²I), exactly (float64)."""
    W, b, sigma = _linear_params(model)
    D = W.shape[0]
    cov = tf.matmul(W, W, transpose_b=True) + sigma ** 2 * tf.eye(D, dtype=tf.float64)
    marginal = tfd.MultivariateNormalTriL(loc=b, scale_tril=tf.linalg.cholesky(cov))
    return marginal.log_prob(tf.cast(x, tf.float64)).numpy()


def exact_posterior(model, x) -> tfd.MultivariateNormalTriL:
    """p(z|x) = N(A⁻¹Wᵀ(x − b)/σ², A⁻¹), A = I + WᵀW/σ²: the posterior q(z|x) tries to be."""
    W, b, sigma = _linear_params(model)
    d = W.shape[1]
    precision = tf.eye(d, dtype=tf.float64) + tf.matmul(W, W, transpose_a=True) / sigma ** 2
    cov = tf.linalg.inv(precision)
    mean = tf.matmul(tf.cast(x, tf.float64) - b, W) @ cov / sigma ** 2  # (N, d); cov is symmetric
    return tfd.MultivariateNormalTriL(loc=mean, scale_tril=tf.linalg.cholesky(cov))


# -- exact answers: a 2-D latent on a grid --------------------------------------------------------
@dataclass
class GridPosterior:
    """The true posterior p(z|x) of one image on a 2-D grid, by numerical integration."""
    z1: np.ndarray  # (n,) grid coordinates
    z2: np.ndarray  # (n,)
    log_joint: np.ndarray  # (n, n) log p(x, z) at (z1[j], z2[i]) — rows follow z2
    log_px: float  # log ∫ p(x, z) dz
    kl_q_posterior: float  # KL(q(z|x) ‖ p(z|x)) on the grid
    q_loc: np.ndarray = field(default_factory=lambda: np.zeros(2))
    q_scale: np.ndarray = field(default_factory=lambda: np.ones(2))

    @property
    def log_posterior(self) -> np.ndarray:
        return self.log_joint - self.log_px


def _grid_log_joint(model, x, z1, z2, rows_per_call=ROWS_PER_CALL):
    """log p(x|z) + log p(z) on the grid (rows z2, columns z1) for one image x (D,)."""
    zz = np.stack(np.meshgrid(z1, z2), -1).reshape(-1, 2).astype(np.float32)
    fn = _compiled(model, "log_joint", lambda: tf.function(
        lambda x, z: model.likelihood(z).log_prob(x) + model.prior().log_prob(z), reduce_retracing=True))
    xt = tf.constant(np.asarray(x, np.float32)[None])
    out = np.concatenate([fn(xt, tf.constant(zz[i:i + rows_per_call])).numpy()
                          for i in range(0, len(zz), rows_per_call)])
    return out.reshape(len(z2), len(z1)).astype(np.float64)


def _grid_integral(log_joint, z1, z2):
    cell = (z1[1] - z1[0]) * (z2[1] - z2[0])
    return float(_logsumexp(log_joint.ravel(), 0) + math.log(cell))


def grid_posterior(model, x, n: int = 201, tol: float = 1e-3, max_n: int = 801) -> GridPosterior:
    """log p(x) = log ∬ p(x|z) p(z) dz on a grid that covers both the posterior's mass (found on a
    coarse grid over the prior's ±7) and q(z|x)'s ±7σ, refined until log p(x) moves less than tol."""
    if model.config.latent_dim != 2:
        raise ValueError(f"the grid integral needs a 2-D latent; this model's latent has {model.config.latent_dim} dimensions")
    x = np.asarray(x, np.float32).reshape(-1)
    q = model.posterior(x[None])
    mu, s = q.loc.numpy()[0].astype(np.float64), q.stddev().numpy()[0].astype(np.float64)
    coarse = np.linspace(-7, 7, 141)
    lj = _grid_log_joint(model, x, coarse, coarse)
    rows, cols = np.nonzero(lj > lj.max() - 25)  # where the posterior has non-negligible mass
    step = coarse[1] - coarse[0]
    lo = np.minimum([coarse[cols.min()] - 2 * step, coarse[rows.min()] - 2 * step], mu - 7 * s)
    hi = np.maximum([coarse[cols.max()] + 2 * step, coarse[rows.max()] + 2 * step], mu + 7 * s)
    previous = None
    while True:
        z1, z2 = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
        lj = _grid_log_joint(model, x, z1, z2)
        log_px = _grid_integral(lj, z1, z2)
        if previous is not None and abs(log_px - previous) < tol or n >= max_n:
            break
        previous, n = log_px, 2 * n - 1
    # KL(q ‖ p(z|x)) = ∫ q (log q − log p(z|x)) dz on the same grid
    zz = np.stack(np.meshgrid(z1, z2), -1).astype(np.float32)
    log_q = tfd.MultivariateNormalDiag(mu.astype(np.float32), s.astype(np.float32)).log_prob(zz).numpy().astype(np.float64)
    cell = (z1[1] - z1[0]) * (z2[1] - z2[0])
    qmass = np.exp(log_q) * cell
    kl = float(np.sum(qmass * (log_q - (lj - log_px))) / qmass.sum())
    return GridPosterior(z1, z2, lj, log_px, kl, mu, s)


def grid_log_px(model, x, **kw) -> np.ndarray:
    return np.array([grid_posterior(model, xi, **kw).log_px for xi in np.asarray(x)])


# -- everything the CLI and the log p(x) page report ----------------------------------------------
def evaluate(model, x, k: int = 1000, seed: int = 0, grid_images: int = 50, **kw) -> tuple[Estimate, dict]:
    """The importance-sampling estimate, plus the exact or grid answer where the model has one."""
    est = estimate_log_px(model, x, k=k, seed=seed, **kw)
    out = est.summary()
    n = est.num_images
    if has_closed_form(model):
        exact = exact_log_px(model, x[:n])
        out.update(exact_log_px=float(exact.mean()),
                   exact_log_px_stderr=float(exact.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"))
    if model.config.latent_dim == 2:
        m = min(n, grid_images)
        grid = grid_log_px(model, x[:m])
        out.update(grid_log_px=float(grid.mean()), grid_num_images=m,
                   log_px_same_images=float(est.log_px[:m].mean()))
    return est, out
