"""The anatomy of the gap (Cremer, Li & Duvenaud 2018): why is the ELBO below log p(x)?

    log p(x) − ELBO(q_enc) = [log p(x) − ELBO(q*)]  +  [ELBO(q*) − ELBO(q_enc)]
                             approximation gap         amortization gap

q_enc is the encoder's q(z|x); q* is the best Gaussian for this one image, found by optimising its ELBO
directly (no encoder), within a family: diagonal (the encoder's own family) or full covariance. The
approximation gap is KL(q* ‖ p(z|x)), what the family cannot do; the amortization gap is what the
encoder, one network for every x, loses against the per-image optimum.

q* is found with Adam on the reparameterised ELBO, E_q[log p(x|z)] − KL(q ‖ p(z)): the expectation from
S fresh draws z = m + L ε per step, the KL between Gaussians exact. Its parameters are whitened by the
encoder's answer (μ, s): m = μ + s ⊙ u and L = diag(s) · M with M lower-triangular with a positive
diagonal (diagonal for the diagonal family), starting at u = 0, M = I, i.e. at q_enc. Adam's steps are
then in units of q_enc's widths, whatever the image's scale.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .estimators import even_part

tfb, tfd = tfp.bijectors, tfp.distributions

ROWS_PER_CALL = 8192  # decoder rows (samples × images) per evaluation call
BETA2 = 0.99  # Adam's second-moment decay (see _fit_fn)


@dataclass
class OptimalQ:
    """The per-image optimal Gaussians q*(z|x) = N(loc, scale_tril · scale_trilᵀ)."""
    loc: np.ndarray  # (N, d)
    scale_tril: np.ndarray  # (N, d, d), diagonal for the diagonal family
    full: bool
    iterations: np.ndarray  # (N,) Adam steps each image took
    converged: np.ndarray  # (N,) bool: it plateaued at its smallest learning rate before max_iters

    def distribution(self) -> tfd.Distribution:
        if self.full:
            return tfd.MultivariateNormalTriL(self.loc, self.scale_tril)
        return tfd.MultivariateNormalDiag(self.loc, np.diagonal(self.scale_tril, axis1=-2, axis2=-1))


@dataclass
class GapResult:
    """Per-image ELBOs of q_enc and q*, log p(x), and the two gaps; all (N,) arrays."""
    log_px: np.ndarray
    elbo_encoder: np.ndarray
    elbo_encoder_stderr: np.ndarray  # Monte-Carlo error (the reconstruction term; the KL is exact)
    elbo_optimal_q: np.ndarray
    elbo_optimal_q_stderr: np.ndarray
    amortization_gap_stderr: np.ndarray  # of the paired difference: both ELBOs use the same ε
    log_px_stderr: np.ndarray  # as given (an AISResult's stderr), else 0
    q_star: OptimalQ
    seconds: float

    @property
    def approximation_gap_stderr(self) -> np.ndarray:
        return np.hypot(self.elbo_optimal_q_stderr, self.log_px_stderr)

    @property
    def amortization_gap(self) -> np.ndarray:
        return self.elbo_optimal_q - self.elbo_encoder

    @property
    def approximation_gap(self) -> np.ndarray:
        return self.log_px - self.elbo_optimal_q

    @property
    def total_gap(self) -> np.ndarray:
        return self.log_px - self.elbo_encoder

    def summary(self) -> dict:
        """Means over images, with standard errors over images (they cover the choice of images)."""
        n = len(self.log_px)
        se = lambda a: float(np.std(a, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")  # noqa: E731
        out = {"num_images": n, "full": self.q_star.full, "converged": int(np.sum(self.q_star.converged)),
               "iterations_max": int(np.max(self.q_star.iterations)), "seconds": self.seconds}
        for name in ("log_px", "elbo_encoder", "elbo_optimal_q", "amortization_gap", "approximation_gap",
                     "total_gap"):
            a = getattr(self, name)
            out[name], out[name + "_stderr"] = float(np.mean(a)), se(a)
        for name in ("amortization_gap", "approximation_gap"):  # the Monte-Carlo error of the mean, images fixed
            out[name + "_mc_stderr"] = float(np.sqrt(np.sum(getattr(self, name + "_stderr") ** 2)) / n)
        return out


# -- q* ----------------------------------------------------------------------------------------------------------
def _q_of(mu, s, u, raw, full: bool):
    """q = N(μ + s ⊙ u, L Lᵀ) with L = diag(s) · M, M = FillScaleTriL(raw) (full) or diag(exp(raw))."""
    if full:
        L = s[..., :, None] * tfb.FillScaleTriL(diag_bijector=tfb.Exp(), diag_shift=None).forward(raw)
        return tfd.MultivariateNormalTriL(mu + s * u, L)
    return tfd.MultivariateNormalDiag(mu + s * u, s * tf.exp(raw))


def _elbo_terms(model, x, q, eps):
    """(S, N) log p(x|z) at z = q's affine map of eps, and (N,) KL(q ‖ p(z)), exact (both Gaussians)."""
    return model.likelihood(q.bijector.forward(eps)).log_prob(x), tfd.kl_divergence(q, model.prior())


def _fit_fn(model, full: bool, num_samples: int, num_iters: int):
    """A compiled run of num_iters Adam steps on −Σ_images ELBO(q_i), with a learning rate per image (0
    holds an image still). The images' parameters do not interact, so this is one Adam run per image.
    β2 = 0.99 rather than 0.999: the first steps, far from q*, have gradients far larger than the later
    ones, and a long memory of them would shrink every later step."""
    def run(x, mu, s, u, raw, m, v, t, key, lr):
        def body(i, u, raw, m, v, t):
            eps = tf.random.stateless_normal([num_samples, *mu.shape], tf.random.experimental.stateless_fold_in(key, i))
            with tf.GradientTape() as tape:
                tape.watch([u, raw])
                ll, kl = _elbo_terms(model, x, _q_of(mu, s, u, raw, full), eps)
                loss = -tf.reduce_sum(tf.reduce_mean(ll, 0) - kl)
            grads = tape.gradient(loss, [u, raw])
            t = t + 1.0
            m = [0.9 * a + 0.1 * g for a, g in zip(m, grads, strict=True)]
            v = [BETA2 * a + (1 - BETA2) * g * g for a, g in zip(v, grads, strict=True)]
            step = lr[:, None] * tf.sqrt(1 - BETA2 ** t) / (1 - 0.9 ** t)
            u, raw = (p - step * a / (tf.sqrt(b) + 1e-8) for p, a, b in zip((u, raw), m, v, strict=True))
            return i + 1, u, raw, m, v, t

        out = tf.while_loop(lambda i, *_: i < num_iters, body, (tf.constant(0), u, raw, m, v, t))
        return out[1:]

    cache = model.__dict__.setdefault("_gap_fns", {})
    key = ("fit", full, num_samples, num_iters)
    if key not in cache:
        cache[key] = tf.function(run, jit_compile=True)
    return cache[key]


def _check_fn(model, full: bool):
    """ELBO of each image's q at fixed draws eps: a deterministic function of the parameters, so its rise
    between checks measures progress and not Monte-Carlo noise."""
    cache = model.__dict__.setdefault("_gap_fns", {})
    if ("check", full) not in cache:
        def run(x, mu, s, u, raw, eps):
            ll, kl = _elbo_terms(model, x, _q_of(mu, s, u, raw, full), eps)
            return tf.reduce_mean(ll, 0) - kl
        cache[("check", full)] = tf.function(run, jit_compile=True)
    return cache[("check", full)]


def optimise_q(model, x, full: bool = False, num_samples: int = 128, learning_rate: float = 0.05,
               max_iters: int = 5000, tol: float = 0.01, check_every: int = 100, patience: int = 2,
               num_decays: int = 3, check_samples: int = 256, seed: int = 0,
               images_per_batch: int | None = None) -> OptimalQ:
    """q*(z|x) for each image x (N, pixels): Adam on its ELBO from q_enc, `num_samples` fresh draws per step.

    Every `check_every` steps each image's ELBO is measured at `check_samples` fixed draws (a deterministic
    function of the parameters, so a change is progress, not noise). An image whose best value has risen
    by less than `tol` nats over `patience` checks has its learning rate divided by 4 (the noise floor of
    the steps shrinks with it); after `num_decays` such cuts, the next plateau ends its run. Every image
    stops by `max_iters`; converged says which ended on a plateau instead. Images go `images_per_batch` at a time
    (default: samples × images ≤ 8192 decoder rows); the draws are keyed by (seed, the batch's first image)."""
    x = np.asarray(x, np.float32)
    batch = even_part(len(x), images_per_batch or max(1, ROWS_PER_CALL // int(num_samples)))  # equal: one compile
    settings = dict(full=full, num_samples=int(num_samples), learning_rate=learning_rate, max_iters=int(max_iters),
                    tol=tol, check_every=int(check_every), patience=patience, num_decays=num_decays,
                    check_samples=int(check_samples))
    parts = [_optimise_batch(model, x[i:i + batch], tf.constant([int(seed) % 2**31, i], tf.int32), **settings)
             for i in range(0, len(x), batch)]
    return OptimalQ(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("loc", "scale_tril")), full,
                    *(np.concatenate([getattr(p, k) for p in parts]) for k in ("iterations", "converged")))


def _optimise_batch(model, x, key, full, num_samples, learning_rate, max_iters, tol, check_every, patience,
                    num_decays, check_samples) -> OptimalQ:
    """optimise_q on one batch of images, its draws keyed by `key`."""
    x = tf.convert_to_tensor(x)
    q = model.posterior(x)
    mu, s = q.loc, q.stddev()
    N, d = mu.shape
    u = tf.zeros([N, d])
    raw = tf.zeros([N, d * (d + 1) // 2]) if full else tf.zeros([N, d])  # M = I
    m, v, t = [tf.zeros_like(u), tf.zeros_like(raw)], [tf.zeros_like(u), tf.zeros_like(raw)], tf.constant(0.0)
    check_eps = tf.random.stateless_normal([check_samples, N, d], tf.random.experimental.stateless_fold_in(key, 0))
    fit, check = _fit_fn(model, full, num_samples, check_every), _check_fn(model, full)
    lr, decays, stale = np.full(N, learning_rate, np.float32), np.zeros(N, int), np.zeros(N, int)
    iterations, best = np.zeros(N, np.int64), check(x, mu, s, u, raw, check_eps).numpy()
    mark = best.copy()  # the best value at the last real rise
    for k in range(1, -(-max_iters // check_every) + 1):
        u, raw, m, v, t = fit(x, mu, s, u, raw, m, v, t, tf.random.experimental.stateless_fold_in(key, k),
                              tf.constant(lr))
        iterations += (lr > 0) * check_every
        best = np.maximum(best, check(x, mu, s, u, raw, check_eps).numpy())
        rose = best - mark >= tol
        mark, stale = np.where(rose, best, mark), np.where(rose, 0, stale + 1)
        plateau = (stale >= patience) & (lr > 0)
        lr = np.where(plateau, np.where(decays < num_decays, lr / 4, 0), lr).astype(np.float32)
        decays, stale = decays + plateau, np.where(plateau, 0, stale)
        if np.all(lr == 0):
            break
    qs = _q_of(mu, s, u, raw, full)
    return OptimalQ(qs.loc.numpy(), qs.scale.to_dense().numpy(), full, iterations, lr == 0)


# -- ELBOs and gaps ----------------------------------------------------------------------------------------------
def gaussian_elbo(model, x, qs: list, num_samples: int = 4096, seed: int = 1):
    """ELBO of each Gaussian q in qs (each with batch shape (N,)) for images x, from the same `num_samples`
    fresh standard-normal draws ε (z = q's affine map of ε, so differences between the qs are paired), the
    KL exact. Returns per q: (ELBO (N,), its MC stderr (N,), the (S, N) terms log p(x|z_s) − KL)."""
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    N, d = x.shape[0], model.config.latent_dim
    chunk = max(1, ROWS_PER_CALL // N)
    key = tf.constant([int(seed) % 2**31, 13], tf.int32)
    lls = [[] for _ in qs]
    for i, start in enumerate(range(0, num_samples, chunk)):
        eps = tf.random.stateless_normal([min(chunk, num_samples - start), N, d],
                                         tf.random.experimental.stateless_fold_in(key, i))
        for ll, q in zip(lls, qs, strict=True):
            ll.append(model.likelihood(q.bijector.forward(eps)).log_prob(x).numpy().astype(np.float64))
    out = []
    for ll, q in zip(lls, qs, strict=True):
        ll = np.concatenate(ll)
        kl = tfd.kl_divergence(q, model.prior()).numpy().astype(np.float64)
        out.append((ll.mean(0) - kl, ll.std(0, ddof=1) / math.sqrt(len(ll)), ll - kl))
    return out


def decompose_gap(model, x, log_px, full: bool = False, eval_samples: int = 4096, seed: int = 0,
                  **optimise_kw) -> GapResult:
    """The gap's two parts for each image x, with log p(x) given: an array (exact, grid) or an AISResult
    (its stderr is carried into the approximation gap's). q* by optimise_q (keyword arguments go to it),
    then both ELBOs from the same `eval_samples` fresh draws."""
    t0 = time.perf_counter()
    x = np.asarray(x, np.float32)
    log_px_stderr = np.asarray(getattr(log_px, "stderr", 0.0), np.float64)
    log_px = np.asarray(getattr(log_px, "log_px", log_px), np.float64)
    if log_px.shape != (len(x),):
        raise ValueError(f"log_px needs one value per image ({len(x)}); got shape {log_px.shape}")
    q_star = optimise_q(model, x, full=full, seed=seed, **optimise_kw)
    (e_enc, se_enc, t_enc), (e_opt, se_opt, t_opt) = gaussian_elbo(
        model, x, [model.posterior(x), q_star.distribution()], eval_samples, seed + 1)
    diff = t_opt - t_enc
    return GapResult(log_px, e_enc, se_enc, e_opt, se_opt, diff.std(0, ddof=1) / math.sqrt(len(diff)),
                     np.broadcast_to(log_px_stderr, log_px.shape).copy(), q_star, time.perf_counter() - t0)
