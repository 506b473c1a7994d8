"""The anatomy of the gap (Cremer, Li & Duvenaud 2018): why is the ELBO below log p(x)?

    log p(x) − ELBO(q_enc) = [log p(x) − ELBO(q*)]  +  [ELBO(q*) − ELBO(q_enc)]
                             approximation gap         amortization gap

q_enc is the encoder's q(z|x); q* is the best Gaussian for this one image, found by optimising its ELBO
directly (no encoder), within a family: diagonal (the encoder's own family) or full covariance. The
approximation gap is KL(q* ‖ p(z|x)), what the family cannot do; the amortization gap is what the
encoder, one network for every x, loses against the per-image optimum.

q* maximises the ELBO, E_q[log p(x|z)] − KL(q ‖ p(z)), written as a deterministic function of q's parameters
by sample-average approximation: z = m + L ε at S draws ε fixed per image, the KL between Gaussians exact, so
L-BFGS (a quasi-Newton method: a few function evaluations per step, no learning rate) converges in tens of
steps. The draws are moment-matched: shifted and whitened so that their sample mean is exactly 0 and their
sample covariance exactly I. Then E_q of any quadratic in z is exact at any S, so for a linear-Gaussian
model the S-draw objective IS the ELBO; for any model only the non-quadratic part of log p(x|z) is left to
sampling error, and the optimum of the S-draw objective loses O(1/S) nats of true ELBO against q*'s (the
benchmark measures it against S = 512). The ELBOs reported are then estimated afresh from other draws.

q's parameters are whitened by the encoder's answer (μ, s): m = μ + s ⊙ u and L = diag(s) · M with M
lower-triangular with a positive diagonal (diagonal for the diagonal family), starting at u = 0, M = I,
i.e. at q_enc; in these units the problem is well scaled whatever the image.
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .draws import even_part
from .estimators import Cancelled

tfb, tfd = tfp.bijectors, tfp.distributions

ROWS_PER_CALL = 4096  # decoder rows (samples × images) per evaluation call of the ELBOs
FIT_ROWS = 4096  # decoder rows (draws × images) per objective evaluation of q*'s fit: 128 draws × 32 images


@dataclass
class OptimalQ:
    """The per-image optimal Gaussians q*(z|x) = N(loc, scale_tril · scale_trilᵀ)."""
    loc: np.ndarray  # (N, d)
    scale_tril: np.ndarray  # (N, d, d), diagonal for the diagonal family
    full: bool
    iterations: np.ndarray  # (N,) L-BFGS steps until the image's own stopping rule held (or max_iters)
    converged: np.ndarray  # (N,) bool: its stopping rule held before max_iters (see optimise_q)

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

    def given(self, log_px) -> GapResult:
        """This result with log p(x) given: an array (exact, grid: no error) or an AISResult (its stderr)."""
        _check_log_px(log_px, len(self.elbo_encoder))
        stderr = np.asarray(getattr(log_px, "stderr", 0.0), np.float64)
        value = np.asarray(getattr(log_px, "log_px", log_px), np.float64)
        return dataclasses.replace(self, log_px=value, log_px_stderr=np.broadcast_to(stderr, value.shape).copy())

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


def moment_matched_normal(shape, key) -> tf.Tensor:
    """(S, N, d) standard-normal draws, shifted and whitened per image so that each image's S draws have sample
    mean exactly 0 and sample covariance exactly I: ε ← C⁻¹(ε − ε̄), C the Cholesky factor of their covariance.
    With S ≤ d the covariance is singular, and only the mean is matched."""
    draws, N, d = (int(v) for v in shape)
    eps = tf.random.stateless_normal([draws, N, d], key)
    eps -= tf.reduce_mean(eps, 0)
    if draws <= d:
        return eps
    chol = tf.linalg.cholesky(tf.einsum("snd,sne->nde", eps, eps) / draws)
    return tf.transpose(tf.linalg.triangular_solve(chol, tf.transpose(eps, [1, 2, 0]), lower=True), [2, 0, 1])


def _continue_fit(model, x, mu, s, eps, previous, n, tol, grad_tol, full: bool):
    """L-BFGS on each image's −ELBO at its fixed draws: n more steps from `previous` (tfp's batched L-BFGS: one
    independent problem per image, each with its own line search and convergence). Its stopping rule, per image:
    |Δ objective| ≤ tol between steps, or the gradient's largest component ≤ grad_tol.
    Eager, not a tf.function: a traced L-BFGS kept hundreds of MB per batch shape for the life of the process
    (its loops' buffers; each new number of images a new trace), and tracing took longer than the fit itself."""
    return tfp.optimizer.lbfgs_minimize(_objective(model, x, mu, s, eps, full), None,
                                        previous_optimizer_results=previous, max_iterations=previous.num_iterations + n,
                                        tolerance=grad_tol, f_absolute_tolerance=tol)


def _objective(model, x, mu, s, eps, full: bool):
    """p (N, d + r), the whitened parameters (u, raw) side by side → (−ELBO of each image at draws eps, and its
    gradient)."""
    d = mu.shape[-1]

    def value_and_gradient(p):
        with tf.GradientTape() as tape:
            tape.watch(p)
            ll, kl = _elbo_terms(model, x, _q_of(mu, s, p[:, :d], p[:, d:], full), eps)
            f = kl - tf.reduce_mean(ll, 0)
        return f, tape.gradient(f, p)
    return value_and_gradient


def optimise_q(model, x, full: bool = False, num_samples: int = 128, max_iters: int = 200, tol: float = 1e-3,
               grad_tol: float = 1e-4, iters_per_call: int = 5, seed: int = 0, images_per_batch: int | None = None,
               progress: Callable[[int, int], None] | None = None,
               should_stop: threading.Event | Callable[[], bool] | None = None) -> OptimalQ:
    """q*(z|x) for each image x (N, pixels): L-BFGS from q_enc on its ELBO at `num_samples` moment-matched draws
    (see the module docstring).

    Each image stops when a step changes its objective by at most `tol` nats or its gradient's largest component
    is at most `grad_tol` (converged), or at `max_iters` steps (not converged). Images go `images_per_batch` at a
    time (default: draws × images ≤ 4096 decoder rows), each batch `iters_per_call` steps per call;
    between calls `progress(images done, N)` is told how many have stopped, and a set `should_stop` raises
    Cancelled. The draws are keyed by (seed, the batch's first image)."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty (N, pixels) array; got shape {x.shape}")
    should_stop = should_stop.is_set if isinstance(should_stop, threading.Event) else (should_stop or (lambda: False))
    batch = even_part(len(x), images_per_batch or max(1, FIT_ROWS // int(num_samples)))  # equal batches
    done = [0]

    def report(n_done):
        if progress:
            progress(n_done, len(x))
        if should_stop():
            raise Cancelled("q* stopped")

    parts = []
    for i in range(0, len(x), batch):
        key = tf.constant([int(seed) % 2**31, i], tf.int32)
        parts.append(_optimise_batch(model, x[i:i + batch], key, full, int(num_samples), int(max_iters), tol,
                                     grad_tol, int(iters_per_call), lambda n: report(done[0] + n)))
        done[0] += len(parts[-1].loc)
    return OptimalQ(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("loc", "scale_tril")), full,
                    *(np.concatenate([getattr(p, k) for p in parts]) for k in ("iterations", "converged")))


def _optimise_batch(model, x, key, full, num_samples, max_iters, tol, grad_tol, iters_per_call, report) -> OptimalQ:
    """optimise_q on one batch of images, its draws keyed by `key`."""
    x = tf.convert_to_tensor(x)
    q = model.posterior(x)
    mu, s = q.loc, q.stddev()
    N, d = mu.shape
    eps = moment_matched_normal([num_samples, N, d], key)
    p0 = tf.zeros([N, d + (d * (d + 1) // 2 if full else d)])  # u = 0, M = I: q_enc itself
    # The first state (one evaluation, no step), so that every call continues from a previous one.
    state = tfp.optimizer.lbfgs_minimize(_objective(model, x, mu, s, eps, full), initial_position=p0, max_iterations=0)
    iterations, stopped = np.full(N, max_iters, np.int64), np.zeros(N, bool)
    while int(state.num_iterations) < max_iters and not stopped.all():
        state = _continue_fit(model, x, mu, s, eps, state, min(iters_per_call, max_iters - int(state.num_iterations)),
                              tol, grad_tol, full)
        now = state.converged.numpy() | state.failed.numpy()
        iterations[now & ~stopped] = int(state.num_iterations)
        stopped |= now
        report(int(stopped.sum()))
    p = state.position
    qs = _q_of(mu, s, p[:, :d], p[:, d:], full)
    return OptimalQ(qs.loc.numpy(), qs.scale.to_dense().numpy(), full, iterations, state.converged.numpy())


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


def fit_q_star(model, x, full: bool = False, eval_samples: int = 4096, seed: int = 0, **optimise_kw) -> GapResult:
    """q* for each image x by optimise_q (keyword arguments go to it: progress, should_stop, …), then the ELBOs of
    q_enc and q* from the same `eval_samples` fresh draws. log p(x) is not known yet (NaN): .given(log_px) adds it."""
    t0 = time.perf_counter()
    x = np.asarray(x, np.float32)
    q_star = optimise_q(model, x, full=full, seed=seed, **optimise_kw)
    (e_enc, se_enc, t_enc), (e_opt, se_opt, t_opt) = gaussian_elbo(
        model, x, [model.posterior(x), q_star.distribution()], eval_samples, seed + 1)
    diff = t_opt - t_enc
    nan = np.full(len(x), np.nan)
    return GapResult(nan, e_enc, se_enc, e_opt, se_opt, diff.std(0, ddof=1) / math.sqrt(len(diff)), nan.copy(),
                     q_star, time.perf_counter() - t0)


def decompose_gap(model, x, log_px, full: bool = False, eval_samples: int = 4096, seed: int = 0,
                  **optimise_kw) -> GapResult:
    """The gap's two parts for each image x, with log p(x) given: an array (exact, grid) or an AISResult
    (its stderr is carried into the approximation gap's). q* and both ELBOs by fit_q_star."""
    _check_log_px(log_px, len(x))
    return fit_q_star(model, x, full, eval_samples, seed, **optimise_kw).given(log_px)


def _check_log_px(log_px, n: int):
    shape = np.shape(getattr(log_px, "log_px", log_px))
    if shape != (n,):
        raise ValueError(f"log_px needs one value per image ({n}); got shape {shape}")
