"""How good is the model, and how far is q(z|x) from the true posterior?

    log p(x) = ELBO(x) + KL(q(z|x) ‖ p(z|x))                       (the gap is the KL)

Importance sampling with a proposal r(z|x) (q itself by default, as in IWAE):

    log p̂_K(x) = logsumexp_k [log p(x|z_k) + log p(z_k) − log r(z_k|x)] − log K,   z_k ~ r(z|x)

E[log p̂_K] is the IWAE bound L_K (Burda et al.): ELBO = L_1 ≤ L_2 ≤ … ≤ log p(x).
Exact answers to check all this against: the closed form of a linear-Gaussian
model, and a grid integral over a 2-D latent.
"""
from __future__ import annotations

import collections
import math
import numbers
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

IWAE_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
MAX_K = 50_000
ROWS_PER_CALL = 8192  # decoder rows (samples × images) per compiled call: big matmuls, ~25 MB of logits
CALLS_AT_ONCE = 2  # compiled calls in flight at a time (threads; TensorFlow releases the GIL)


class Cancelled(Exception):
    """Raised inside an estimate when its stop request is set."""


# -- compiled pieces, one per model -------------------------------------------------------
def _compiled(model, key: str, build: Callable):
    cache = model.__dict__.setdefault("_compiled_fns", {})
    if key not in cache:
        cache[key] = build()
    return cache[key]


def _draw_fn(model):
    """(x (B,D), loc (B,d), scale, eps (c,B,d)) → log p(x|z) and log r(z|x) − log p(z), each (c,B), for
    z = loc + scale·eps, a draw from the proposal r. scale is (B,d) for a diagonal r = N(loc, diag scale²)
    or (B,d,d) for r = N(loc, LLᵀ) with L lower-triangular. The two parts are returned apart so that
    log w = log p(x|z) − (log r − log p(z)) is summed in float64: log p(x|z) can be in the thousands.

    The diagonal case (q itself, the prior) is compiled with XLA, which fuses the likelihood's
    elementwise log-density and its sum over pixels into one pass over the decoder's output (measured
    ~1.3× the plain graph at the default model's shapes); the noise comes from numpy, so XLA's own RNG
    plays no part and results match the plain path up to float round-off."""
    def diagonal(x, loc, scale, eps):
        proposal = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
        z = proposal.bijector.forward(eps)
        return model.likelihood(z).log_prob(x), proposal.log_prob(z) - model.prior().log_prob(z)

    def full(x, loc, scale_tril, eps):
        proposal = tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale_tril)
        z = proposal.bijector.forward(eps)
        return model.likelihood(z).log_prob(x), proposal.log_prob(z) - model.prior().log_prob(z)

    diag_fn = _compiled(model, "draw_diag", lambda: tf.function(diagonal, jit_compile=True))
    tril_fn = _compiled(model, "draw_tril", lambda: tf.function(full, reduce_retracing=True))
    return lambda x, loc, scale, eps: (tril_fn if scale.shape.rank == 3 else diag_fn)(x, loc, scale, eps)


def _q_fn(model):
    """x → q(z|x)'s (μ, s) and the exact KL(q ‖ p(z)) = ½ Σ (μ² + s² − log s² − 1), compiled: eagerly,
    building the TFP objects costs ~20 ms a call, which would dominate small image batches."""
    def fn(x):
        q = model.posterior(x)
        return q.loc, q.stddev(), tfd.kl_divergence(q, model.prior())
    return _compiled(model, "q", lambda: tf.function(fn, reduce_retracing=True))


def image_noise(seed: int, image_index: int, k: int, d: int) -> np.ndarray:
    """The K standard-normal draws of one image: keyed by (seed, image index), so results do not
    depend on how images are batched or samples chunked, and the first k of K draws are the same for
    every K ≥ k (a longer run extends a shorter one). elbo() and estimate_log_px() share them."""
    return np.random.default_rng([seed, image_index]).standard_normal((k, d), dtype=np.float32)


def _image_batch(n: int, k: int, d: int, max_weights: int, rows_per_call: int) -> int:
    """Images per batch: the batch's noise and weights (≈ K·B·(d + 6) floats) stay under max_weights,
    and a batch is at most 16 compiled calls, so that progress is reported every few seconds at worst."""
    return even_part(n, max(1, min(n, max_weights // (k * (d + 6)), 16 * rows_per_call // k)))


def even_part(total: int, most: int) -> int:
    """A part size ≤ most for cutting `total` items into parts: the largest that divides total evenly if
    one is at least most/2, else most. Equal parts mean one shape, so one XLA compile, and no padding
    (K = 5000 goes in chunks of 250, not 327 + a last chunk of 95)."""
    most = max(1, min(total, most))
    for size in range(most, (most + 1) // 2 - 1, -1):
        if total % size == 0:
            return size
    return most


def _noise_chunks(seed: int, first_index: int, n: int, k: int, d: int, chunk: int):
    """image_noise's draws for n images, `chunk` samples at a time: (c, n, d) arrays. Each image's
    generator runs on from chunk to chunk, so laid end to end they are image_noise(seed, first_index + i,
    k, d) exactly, whatever the chunk size."""
    gens = [np.random.default_rng([seed, first_index + i]) for i in range(n)]
    for s in range(0, k, chunk):
        out = np.empty((min(chunk, k - s), n, d), np.float32)
        for i, g in enumerate(gens):
            out[:, i] = g.standard_normal((len(out), d), dtype=np.float32)
        yield out


def _draws(model, x, k: int, params, seed: int, first_index: int, rows_per_call: int, should_stop=None):
    """log p(x|z) and log r(z|x) − log p(z), float64 (K, N), K draws per image from the proposal `params`.
    Decoder outputs exist one chunk (≤ rows_per_call rows of samples × images) at a time — two chunks,
    as two compiled calls run at once: one XLA call leaves part of a 2-core CPU idle (it runs its ops
    one by one), two fill it (measured +9 %). The main thread draws the next chunk's noise meanwhile."""
    x = tf.convert_to_tensor(x, tf.float32)
    n, d = x.shape[0], model.config.latent_dim
    loc, scale = params
    chunk = even_part(k, rows_per_call // n)
    fn = _draw_fn(model)
    ll, rp = np.empty((k, n)), np.empty((k, n))

    def run(s, eps):
        a, b = fn(x, loc, scale, tf.constant(eps))
        ll[s:s + len(eps)], rp[s:s + len(eps)] = a.numpy(), b.numpy()

    with ThreadPoolExecutor(CALLS_AT_ONCE, thread_name_prefix="vae_tf-draws") as pool:
        running = collections.deque()
        for s, eps in zip(range(0, k, chunk), _noise_chunks(seed, first_index, n, k, d, chunk)):
            if should_stop is not None and should_stop():
                raise Cancelled("stopped during a batch")
            if len(running) == CALLS_AT_ONCE:
                running.popleft().result()
            running.append(pool.submit(run, s, eps))
        for call in running:
            call.result()
    return ll, rp


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
    step = even_part(len(x), min(batch, rows_per_call, max_weights // (S * (d + 6))))  # noise + (S, B) terms in memory
    parts = []
    for i in range(0, len(x), step):
        loc, scale, kl = _q_fn(model)(tf.constant(x[i:i + step]))
        ll, mc_kl = _draws(model, x[i:i + step], S, (loc, scale), seed, first_index + i, rows_per_call)
        kl = mc_kl.mean(0) if not analytic_kl else kl.numpy().astype(np.float64)
        terms = ll if analytic_kl else ll - mc_kl  # what the ELBO averages, up to a constant
        parts.append((ll.mean(0) - kl, ll.mean(0), kl, se(terms), mc_kl.mean(0), se(mc_kl)))
    return ElboResult(*(np.concatenate([p[j] for p in parts]) for j in range(6)))


# -- importance sampling ----------------------------------------------------------------------
@dataclass
class Estimate:
    """Per-image importance-sampling results for N images, K samples each."""
    log_px: np.ndarray  # (N,) log p̂_K(x)
    elbo: np.ndarray  # (N,) ELBO (analytic KL; recon averaged over the K draws when r = q)
    ess: np.ndarray  # (N,) effective sample size (Σw)² / Σw² of the K weights
    log_px_mc_stderr: np.ndarray  # (N,) delta-method MC error of log p̂: √(1/ESS − 1/K) (NaN for K = 1)
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
    """(loc (N,d), scale) of the proposal for each image: q(z|x), the prior, or a given MVN distribution
    (batch shape (N,) or (), e.g. the exact posterior of a linear-Gaussian model). scale is the diagonal
    (N,d) of a diagonal proposal, else the lower-triangular (N,d,d) of its covariance's Cholesky factor."""
    x = tf.convert_to_tensor(x, tf.float32)
    n, d = x.shape[0], model.config.latent_dim
    if isinstance(proposal, str) and proposal == "posterior":
        loc, scale, _ = _q_fn(model)(x)
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


def _draws_mirrored(model, x, k: int, params, seed: int, first_index: int, rows_per_call: int, should_stop,
                    strategy: tf.distribute.Strategy):
    """_draws with the images split over the strategy's replicas (a model built in its scope has a copy
    of the weights on each device). Each image's draws are keyed by its index, so the result is the
    one-device result, computed in parallel."""
    n, d, replicas = len(x), model.config.latent_dim, strategy.num_replicas_in_sync
    parts = [p for p in np.array_split(np.arange(n), replicas)]
    loc, scale = (np.asarray(p, np.float32) for p in params)
    eps = np.empty((k, n, d), np.float32)
    for i in range(n):
        eps[:, i] = image_noise(seed, first_index + i, k, d)
    chunk = even_part(k, rows_per_call // max(len(p) for p in parts))
    per_replica = lambda arrays: strategy.experimental_distribute_values_from_function(  # noqa: E731
        lambda ctx: tf.constant(arrays[ctx.replica_id_in_sync_group]))
    xs, locs, scales = (per_replica([a[p] for p in parts]) for a in (np.asarray(x, np.float32), loc, scale))
    fn = _draw_fn(model)
    ll, rp = np.empty((k, n)), np.empty((k, n))
    for s in range(0, k, chunk):
        if should_stop is not None and should_stop():
            raise Cancelled("stopped during a batch")
        out = strategy.run(fn, args=(xs, locs, scales, per_replica([eps[s:s + chunk, p] for p in parts])))
        for p, a, b in zip(parts, *(strategy.experimental_local_results(o) for o in out)):
            ll[s:s + chunk, p], rp[s:s + chunk, p] = a.numpy(), b.numpy()
    return ll, rp


def log_weights(model, x, k: int, proposal="posterior", seed: int = 0, first_index: int = 0,
                rows_per_call: int = ROWS_PER_CALL, params=None):
    """log w and log p(x|z), shape (K, N), float64, for images x, computed in chunks of samples."""
    params = params if params is not None else proposal_params(model, x, proposal)
    ll, rp = _draws(model, x, k, params, seed, first_index, rows_per_call)
    return ll - rp, ll


def _slice_proposal(proposal, i: int, j: int, n: int):
    """This batch's part of a per-image proposal distribution (one for all images passes through)."""
    if not isinstance(proposal, tfd.Distribution) or proposal.batch_shape.rank == 0:
        return proposal
    if proposal.batch_shape.num_elements() != n:
        raise ValueError(f"the proposal has batch shape {proposal.batch_shape}; it needs one distribution per image ({n})")
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
    batch = _image_batch(len(x), k, model.config.latent_dim, max_weights, rows_per_call)
    mirrored = strategy is not None and strategy.num_replicas_in_sync > 1
    t0, parts, cancelled = time.perf_counter(), [], False
    # A helper thread summarises a finished batch (float64 numpy) while TensorFlow computes the next.
    pool = ThreadPoolExecutor(1, thread_name_prefix="vae_tf-summary")
    try:
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            try:
                if should_stop():
                    raise Cancelled("stopped between batches")
                kl = None
                if name == "posterior":  # q's parameters and its exact KL(q ‖ p(z)) in one call
                    loc, scale, kl = _q_fn(model)(tf.constant(xb))
                    params = loc, scale
                else:
                    params = proposal_params(model, xb, _slice_proposal(proposal, i, i + len(xb), len(x)))
                if mirrored:
                    ll, rp = _draws_mirrored(model, xb, k, params, seed, i, rows_per_call, should_stop, strategy)
                else:
                    ll, rp = _draws(model, xb, k, params, seed, i, rows_per_call, should_stop)
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
                    time.perf_counter() - t0, cancelled)


def _log_px_and_ess(lw):
    """log p̂ = logsumexp(log w) − log K and ESS = (Σw)²/Σw² over axis 0, in float64."""
    lse = _logsumexp(lw, 0)
    return lse - math.log(lw.shape[0]), np.exp(2 * lse - _logsumexp(2 * lw, 0))


def _delta_var(ess, k):
    """Var(log p̂_k) ≈ Var(w)/(k·E[w]²) = 1/ESS − 1/k (delta method). One draw says nothing: NaN."""
    return np.maximum(1 / ess - 1 / k, 0) if k > 1 else np.full(np.shape(ess), np.nan)


def _summarise_weights(model, x, lw, ll, ks, proposal, seed=0, first_index=0, kl=None):
    K = lw.shape[0]
    log_px, ess = _log_px_and_ess(lw)
    stderr = np.sqrt(_delta_var(ess, K))
    iwae, var = [], []
    for kk in ks:
        m = K // kk
        groups = _logsumexp(lw[: m * kk].reshape(m, kk, -1), 1) - math.log(kk)  # (m, N): log p̂_k of each group
        iwae.append(groups.mean(0))
        if m > 1:  # the spread of the m independent group estimates
            var.append(groups.var(0, ddof=1) / m)
        else:  # one group: the delta method on that group's own k weights
            var.append(_delta_var(ess if kk == K else _log_px_and_ess(lw[:kk])[1], kk))
    if proposal == "posterior":  # E_q[log p(x|z)] from the K draws, KL exactly
        kl = _q_fn(model)(tf.constant(x))[2] if kl is None else kl
        elbo_ = ll.mean(0) - np.asarray(kl, np.float64)
    else:
        elbo_ = elbo(model, x, num_samples=min(K, 1000), seed=seed, first_index=first_index).elbo
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
    kl_q_posterior: float  # KL(q(z|x) ‖ p(z|x)) = log p(x) − ELBO
    q_loc: np.ndarray = field(default_factory=lambda: np.zeros(2))
    q_scale: np.ndarray = field(default_factory=lambda: np.ones(2))
    elbo: float = float("nan")  # E_q[log p(x, z)] + H[q], the expectation on a grid over q's ±7σ
    converged: bool = True  # False if log p(x) still moved by more than tol at the finest grid

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


def _posterior_box(model, x, step: float = 0.1, margin: float = 25.0):
    """The box holding the posterior's mass: where log p(x, z) > its max − margin on a coarse grid
    over the prior's ±7, widened (to ±28) while that region touches the grid's edge."""
    for r in (7.0, 14.0, 28.0):
        coarse = np.linspace(-r, r, int(round(2 * r / step)) + 1)
        lj = _grid_log_joint(model, x, coarse, coarse)
        rows, cols = np.nonzero(lj > lj.max() - margin)
        last = len(coarse) - 1
        if min(rows.min(), cols.min()) > 0 and max(rows.max(), cols.max()) < last:
            break
    pad = 2 * step
    return (np.array([coarse[cols.min()] - pad, coarse[rows.min()] - pad]),
            np.array([coarse[cols.max()] + pad, coarse[rows.max()] + pad]))


def grid_posterior(model, x, n: int = 101, tol: float = 1e-3, max_n: int = 801, q_n: int = 101) -> GridPosterior:
    """log p(x) = log ∬ p(x|z) p(z) dz on a grid that covers both the posterior's mass and q(z|x)'s
    ±7σ (so a plot shows both), refined until log p(x) moves less than tol.

    KL(q ‖ p(z|x)) = log p(x) − ELBO with ELBO = E_q[log p(x, z)] + H[q]: the expectation on a
    q_n × q_n grid over q's own ±7σ (resolved however narrow q is), H[q] exactly."""
    if model.config.latent_dim != 2:
        raise ValueError(f"the grid integral needs a 2-D latent; this model's latent has {model.config.latent_dim} dimensions")
    x = np.asarray(x, np.float32).reshape(-1)
    q = model.posterior(x[None])
    mu, s = q.loc.numpy()[0].astype(np.float64), q.stddev().numpy()[0].astype(np.float64)
    lo, hi = _posterior_box(model, x)
    lo, hi = np.minimum(lo, mu - 7 * s), np.maximum(hi, mu + 7 * s)
    previous, converged = None, False
    while True:
        z1, z2 = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
        lj = _grid_log_joint(model, x, z1, z2)
        log_px = _grid_integral(lj, z1, z2)
        converged = previous is not None and abs(log_px - previous) < tol
        if converged or n >= max_n:
            break
        previous, n = log_px, 2 * n - 1
    u = np.linspace(-7, 7, q_n)
    g1, g2 = mu[0] + s[0] * u, mu[1] + s[1] * u
    log_q = q[0].log_prob(np.stack(np.meshgrid(g1, g2), -1).astype(np.float32)).numpy().astype(np.float64)
    weights = np.exp(log_q - _logsumexp(log_q.ravel(), 0))  # q's mass in each cell of its grid
    elbo_ = float(np.sum(weights * _grid_log_joint(model, x, g1, g2)) + float(q[0].entropy()))
    return GridPosterior(z1, z2, lj, log_px, log_px - elbo_, mu, s, elbo_, converged)


def grid_log_px(model, x, **kw) -> np.ndarray:
    return np.array([grid_posterior(model, xi, **kw).log_px for xi in np.asarray(x)])


# -- everything the CLI and the log p(x) page report ----------------------------------------------
def evaluate(model, x, k: int = 1000, seed: int = 0, grid_images: int = 50, **kw) -> tuple[Estimate, dict]:
    """The importance-sampling estimate, plus the exact or grid answer where the model has one."""
    x = np.asarray(x, np.float32)
    est = estimate_log_px(model, x, k=k, seed=seed, **kw)
    out = est.summary()
    n = est.num_images  # fewer than len(x) if the estimate was stopped
    if has_closed_form(model):
        exact = exact_log_px(model, x[:n])
        out.update(exact_log_px=float(exact.mean()),
                   exact_log_px_stderr=float(exact.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"))
    if model.config.latent_dim == 2 and grid_images > 0:
        m = min(n, grid_images)
        grid = grid_log_px(model, x[:m])
        out.update(grid_log_px=float(grid.mean()), grid_num_images=m,
                   log_px_same_images=float(est.log_px[:m].mean()))
    return est, out
