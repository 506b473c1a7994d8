"""Exact answers to check the estimators against.

Linear-Gaussian model, x = Wz + b + σε with z ~ N(0, I), ε ~ N(0, I):

    p(x)   = N(x; b, WWᵀ + σ²I)
    p(z|x) = N(A⁻¹Wᵀ(x − b)/σ², A⁻¹),   A = I + WᵀW/σ²

and its maximum likelihood for a data set, probabilistic PCA, in closed form (ppca_ml).

A 2-D latent: log p(x) = log ∬ p(x|z) p(z) dz as a sum over a grid that covers the posterior's
mass, and p(z|x) = p(x, z) / p(x) read off the same grid (its modes, its mass inside q's ellipse);
a 1-D latent: the same integral by quadrature on a line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .draws import ROWS_PER_CALL, compiled
from .estimators import logsumexp

tfd = tfp.distributions


# -- the linear-Gaussian model ------------------------------------------------------------------------
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


def exact_kl_q_posterior(model, x) -> np.ndarray:
    """KL(q(z|x) ‖ p(z|x)) = log p(x) − ELBO exactly, both Gaussians (float64): the gap the estimators bound."""
    q = model.posterior(np.asarray(x, np.float32))
    q64 = tfd.MultivariateNormalDiag(tf.cast(q.loc, tf.float64), tf.cast(q.stddev(), tf.float64))
    return tfd.kl_divergence(q64, exact_posterior(model, x)).numpy()


# -- probabilistic PCA: the linear-Gaussian model's maximum likelihood ----------------------------------------
@dataclass
class PPCA:
    """x = Wz + μ + σε, z ~ N(0, I_d): p(x) = N(x; μ, WWᵀ + σ²I), at its maximum likelihood for some data."""
    mean: np.ndarray  # (D,)
    W: np.ndarray  # (D, d)
    sigma: float

    def log_px(self, x, batch: int = 2000) -> np.ndarray:
        """(N,) log N(x; μ, WWᵀ + σ²I) in float64."""
        D = len(self.mean)
        cov = self.W @ self.W.T + self.sigma ** 2 * np.eye(D)
        marginal = tfd.MultivariateNormalTriL(loc=tf.constant(self.mean), scale_tril=tf.linalg.cholesky(cov))
        return np.concatenate([marginal.log_prob(np.asarray(x[i:i + batch], np.float64)).numpy()
                               for i in range(0, len(x), batch)])


def ppca_ml(x, latent_dim: int, batch: int = 2000, scale: float = 1.0) -> PPCA:
    """The maximum-likelihood linear-Gaussian model of the data x (N, D), in closed form (Tipping & Bishop 1999):
    with S = (1/N) Σ (x − x̄)(x − x̄)ᵀ and its eigenvalues λ₁ ≥ … ≥ λ_D (eigenvectors U),

        μ = x̄,   σ² = (1/(D − d)) Σ_{j>d} λ_j,   W = U_d (Λ_d − σ²I)^½

    (up to a rotation of W, which leaves p(x) unchanged). A linear VAE's ELBO has the same global optimum
    (Lucas et al. 2019), so this is what training it should reach. The data are x · scale (uint8 pixels with
    scale 1/255 are the Gaussian likelihood's grey levels, without a float copy of the training set)."""
    x = np.asarray(x)
    n, D = x.shape
    d = int(latent_dim)
    if not 1 <= d < D:
        raise ValueError(f"latent_dim must be between 1 and {D - 1}; got {latent_dim}")
    mean = np.zeros(D)
    for i in range(0, n, batch):
        mean += np.asarray(x[i:i + batch], np.float64).sum(0) * scale
    mean /= n
    S = np.zeros((D, D))
    for i in range(0, n, batch):  # in batches: a float64 copy of all of x need not exist
        r = np.asarray(x[i:i + batch], np.float64) * scale - mean
        S += r.T @ r
    lam, U = np.linalg.eigh(S / n)  # ascending
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = float(lam[d:].mean())
    return PPCA(mean, U[:, :d] * np.sqrt(np.maximum(lam[:d] - sigma2, 0.0)), math.sqrt(sigma2))


# -- a 2-D latent on a grid -------------------------------------------------------------------------
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


def log_joint_points(model, x, zz, rows_per_call: int = ROWS_PER_CALL) -> np.ndarray:
    """log p(x|z) + log p(z) at each row of zz (n, d), for one image x (D,), float64."""
    fn = compiled(model, "log_joint", lambda: tf.function(
        lambda x, z: model.likelihood(z).log_prob(x) + model.prior().log_prob(z), reduce_retracing=True))
    xt = tf.constant(np.asarray(x, np.float32).reshape(1, -1))
    zz = np.asarray(zz, np.float32)
    return np.concatenate([fn(xt, tf.constant(zz[i:i + rows_per_call])).numpy()
                           for i in range(0, len(zz), rows_per_call)]).astype(np.float64)


def log_joint_grid(model, x, z1, z2, rows_per_call: int = ROWS_PER_CALL) -> np.ndarray:
    """log p(x|z) + log p(z) at every (z1[j], z2[i]), rows following z2, for one image x (D,), float64."""
    zz = np.stack(np.meshgrid(z1, z2), -1).reshape(-1, 2)
    return log_joint_points(model, x, zz, rows_per_call).reshape(len(z2), len(z1))


def _grid_integral(log_joint, z1, z2):
    cell = (z1[1] - z1[0]) * (z2[1] - z2[0])
    return float(logsumexp(log_joint.ravel(), 0) + math.log(cell))


def posterior_box(model, x, step: float = 0.1, margin: float = 25.0):
    """The box holding the posterior's mass: where log p(x, z) > its max − margin on a coarse grid
    over the prior's ±7, widened (to ±28) while that region touches the grid's edge."""
    for r in (7.0, 14.0, 28.0):
        coarse = np.linspace(-r, r, int(round(2 * r / step)) + 1)
        lj = log_joint_grid(model, x, coarse, coarse)
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
        raise ValueError(f"the grid integral needs a 2-D latent; "
                         f"this model's latent has {model.config.latent_dim} dimensions")
    x = np.asarray(x, np.float32).reshape(-1)
    q = model.posterior(x[None])
    mu, s = q.loc.numpy()[0].astype(np.float64), q.stddev().numpy()[0].astype(np.float64)
    lo, hi = posterior_box(model, x)
    lo, hi = np.minimum(lo, mu - 7 * s), np.maximum(hi, mu + 7 * s)
    previous, converged = None, False
    while True:
        z1, z2 = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
        lj = log_joint_grid(model, x, z1, z2)
        log_px = _grid_integral(lj, z1, z2)
        converged = previous is not None and abs(log_px - previous) < tol
        if converged or n >= max_n:
            break
        previous, n = log_px, 2 * n - 1
    u = np.linspace(-7, 7, q_n)
    g1, g2 = mu[0] + s[0] * u, mu[1] + s[1] * u
    log_q = q[0].log_prob(np.stack(np.meshgrid(g1, g2), -1).astype(np.float32)).numpy().astype(np.float64)
    weights = np.exp(log_q - logsumexp(log_q.ravel(), 0))  # q's mass in each cell of its grid
    elbo_ = float(np.sum(weights * log_joint_grid(model, x, g1, g2)) + float(q[0].entropy()))
    return GridPosterior(z1, z2, lj, log_px, log_px - elbo_, mu, s, elbo_, converged)


def grid_log_px(model, x, **kw) -> np.ndarray:
    return np.array([grid_posterior(model, xi, **kw).log_px for xi in np.asarray(x)])


def posterior_modes(z1, z2, log_posterior, radius: int = 6, within: float = 30.0, max_modes: int = 3):
    """Local maxima of the gridded log p(z|x), highest first: a grid point counts when no point within
    `radius` cells is higher and it lies less than `within` nats under the peak. → [(z (2,), log p)]."""
    lp = np.asarray(log_posterior, np.float64)
    padded = np.pad(lp, radius, constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1))
    is_max = (lp >= windows.max(axis=(2, 3))) & (lp > lp.max() - within)
    rows, cols = np.nonzero(is_max)
    order = np.argsort(-lp[rows, cols])[:max_modes]
    return [(np.array([z1[cols[i]], z2[rows[i]]]), float(lp[rows[i], cols[i]])) for i in order]


def mass_within(z1, z2, log_posterior, loc, scale, k: float = 2.0) -> float:
    """The share of p(z|x)'s mass (on the grid) inside q's k-σ ellipse. q itself keeps 1 − e^(−k²/2) there."""
    g1, g2 = np.meshgrid(z1, z2)
    inside = ((g1 - loc[0]) / scale[0]) ** 2 + ((g2 - loc[1]) / scale[1]) ** 2 <= k * k
    w = np.exp(np.asarray(log_posterior, np.float64) - np.max(log_posterior))
    return float(w[inside].sum() / w.sum())


# -- a 1-D latent by quadrature --------------------------------------------------------------------------------
@dataclass
class LinePosterior:
    """The true posterior p(z|x) of one image over a 1-D latent, by quadrature (the 1-D grid_posterior)."""
    z: np.ndarray  # (n,) nodes
    log_joint: np.ndarray  # (n,) log p(x, z) there
    log_px: float  # log ∫ p(x, z) dz
    kl_q_posterior: float  # KL(q(z|x) ‖ p(z|x)) = log p(x) − ELBO
    elbo: float  # E_q[log p(x, z)] + H[q], the expectation by quadrature over q's ±7σ
    converged: bool  # False if log p(x) still moved by more than tol at the finest spacing


def _line_integral(model, x, lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    z = np.linspace(lo, hi, n)
    lj = log_joint_points(model, x, z[:, None])
    return z, lj, float(logsumexp(lj, 0) + math.log(z[1] - z[0]))  # Σ p(x, z_i) Δz


def quadrature_posterior(model, x, n: int = 201, tol: float = 1e-4, max_n: int = 12_801,
                         q_n: int = 201) -> LinePosterior:
    """log p(x) = log ∫ p(x|z) p(z) dz for a 1-D latent: Σ_i p(x, z_i)·Δz on evenly spaced nodes over an interval
    holding both the posterior's mass (where log p(x, z) > its max − 25 on a coarse pass over ±7, widened to ±28
    while that region touches the edge) and q's ±7σ, the spacing halved until log p(x) moves less than tol.
    KL(q ‖ p(z|x)) = log p(x) − ELBO, ELBO = E_q[log p(x, z)] + H[q] on q_n nodes over q's own ±7σ."""
    if model.config.latent_dim != 1:
        raise ValueError(f"quadrature needs a 1-D latent; this model's latent has {model.config.latent_dim} dimensions")
    x = np.asarray(x, np.float32).reshape(-1)
    q = model.posterior(x[None])
    mu, s = float(q.loc.numpy()[0, 0]), float(q.stddev().numpy()[0, 0])
    for r in (7.0, 14.0, 28.0):
        z, lj, _ = _line_integral(model, x, -r, r, int(20 * r) + 1)
        inside = np.nonzero(lj > lj.max() - 25.0)[0]
        if inside.min() > 0 and inside.max() < len(z) - 1:
            break
    step = z[1] - z[0]
    lo, hi = min(z[inside.min()] - 2 * step, mu - 7 * s), max(z[inside.max()] + 2 * step, mu + 7 * s)
    previous, converged = None, False
    while True:
        z, lj, log_px = _line_integral(model, x, lo, hi, n)
        converged = previous is not None and abs(log_px - previous) < tol
        if converged or n >= max_n:
            break
        previous, n = log_px, 2 * n - 1
    g = mu + s * np.linspace(-7, 7, q_n)
    log_q = q[0].log_prob(g[:, None].astype(np.float32)).numpy().astype(np.float64)
    weights = np.exp(log_q - logsumexp(log_q, 0))  # q's mass at each node
    elbo_ = float(np.sum(weights * log_joint_points(model, x, g[:, None])) + float(q[0].entropy()))
    return LinePosterior(z, lj, log_px, log_px - elbo_, elbo_, converged)


def exact_answer(model, x):
    """The exact posterior of one image where a latent of 1 or 2 dimensions lets it be integrated numerically:
    quadrature_posterior or grid_posterior (both have log_px, kl_q_posterior, elbo, converged)."""
    d = model.config.latent_dim
    if d not in (1, 2):
        raise ValueError(f"numerical integration needs a 1-D or 2-D latent; this one has {d} dimensions")
    return quadrature_posterior(model, x) if d == 1 else grid_posterior(model, x)
