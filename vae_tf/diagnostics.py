"""What the latent code is used for: KL per dimension, active units, the mutual information I(x; z),
traversals, and the PPCA spectrum a linear VAE should match.

With q(z|x) = N(μ(x), diag s(x)²) and p(z) = N(0, I) the KL splits exactly over dimensions,

    KL(q(z|x) ‖ p(z)) = Σ_j ½ (μ_j² + s_j² − log s_j² − 1),

and its average over N images splits into information and a marginal term (Hoffman & Johnson 2016,
"ELBO surgery"), with q(z) = (1/N) Σ_n q(z|x_n) the aggregate posterior of those images:

    (1/N) Σ_n KL(q(z|x_n) ‖ p(z)) = I(x; z) + KL(q(z) ‖ p(z)),
    I(x; z) = E_n E_q(z|x_n) [log q(z|x_n) − log q(z)]  ≤  log N.

Estimate: one draw z_n ~ q(z|x_n) per image and repeat, with log q(z_n) = logsumexp_m log q(z_n|x_m) − log N
summed over all N images (the full data set, no minibatch approximation, so log q(z) is exact for the
draw). Both terms are averages of per-draw values over independent draws; their standard errors are the
per-draw standard deviations over √(draws). Their sum is a Monte-Carlo estimate of the average KL, which
is also known exactly: `LatentDiagnostics.split_check` compares the two.

Active units (Burda et al. 2016): u is active when A_u = Cov_x(E_q[z_u]) = Var_n μ_u(x_n) > 0.01.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .draws import q_fn
from .estimators import logsumexp

ACTIVE_THRESHOLD = 0.01  # Burda et al.'s threshold on Var_x E_q[z_u]
LOG_2PI = math.log(2 * math.pi)
CHUNK_PAIRS = 1_000_000  # draws × images of log q(z|x) held at once (8 MB of float64)


@dataclass
class LatentDiagnostics:
    num_images: int
    kl_per_dim: np.ndarray  # (d,) mean over images of KL_j, nats
    kl_per_dim_stderr: np.ndarray  # (d,) standard error over images
    activity: np.ndarray  # (d,) A_u = Var_n μ_u(x_n)
    mutual_information: float  # I(x; z), nats
    mutual_information_stderr: float
    marginal_kl: float  # KL(q(z) ‖ p(z)), nats
    marginal_kl_stderr: float
    kl_mc: float  # I + marginal KL: the same draws' estimate of the average KL
    kl_mc_stderr: float
    draws: int  # draws z_n ~ q(z|x_n) behind the two Monte-Carlo terms (images × repeats)
    threshold: float = ACTIVE_THRESHOLD

    @property
    def active(self) -> np.ndarray:
        return self.activity > self.threshold

    @property
    def active_units(self) -> int:
        return int(self.active.sum())

    @property
    def kl(self) -> float:
        """The average KL(q(z|x) ‖ p(z)), exact (the sum of the per-dimension terms)."""
        return float(self.kl_per_dim.sum())

    @property
    def order(self) -> np.ndarray:
        """Dimensions by decreasing KL."""
        return np.argsort(-self.kl_per_dim, kind="stable")

    @property
    def log_n(self) -> float:
        """I(x; z) over N images can never exceed log N: the ceiling of the estimate."""
        return math.log(self.num_images)

    @property
    def split_check(self) -> float:
        """(I + marginal KL − exact average KL) in standard errors of the sum: |·| < 3 but for bad luck."""
        return (self.kl_mc - self.kl) / self.kl_mc_stderr if self.kl_mc_stderr > 0 else 0.0

    def fields(self) -> dict:
        """The public `evaluate --json` fields."""
        return {"active_units": self.active_units, "kl_per_dim": [float(v) for v in self.kl_per_dim],
                "mutual_information": self.mutual_information,
                "mutual_information_stderr": self.mutual_information_stderr,
                "marginal_kl": self.marginal_kl, "marginal_kl_stderr": self.marginal_kl_stderr,
                "diagnostics_images": self.num_images}


def posterior_moments(model, x, batch: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """μ(x) and s(x), each (N, d) float64, for flat images x (N, D)."""
    x = np.asarray(x, np.float32)
    fn = q_fn(model)
    parts = [fn(tf.constant(x[i:i + batch]))[:2] for i in range(0, len(x), batch)]
    return tuple(np.concatenate([np.asarray(p[j], np.float64) for p in parts]) for j in (0, 1))


def kl_terms(mu, s) -> np.ndarray:
    """(N, d): ½ (μ² + s² − log s² − 1), the KL of each image's q(z|x) from N(0, 1) in each dimension."""
    return 0.5 * (mu ** 2 + s ** 2 - 2 * np.log(s) - 1)


def activity(mu) -> np.ndarray:
    """A_u = Cov_x(E_q[z_u]): the variance over images of each posterior mean (ddof 0, as Burda et al.)."""
    return np.var(np.asarray(mu, np.float64), axis=0)


def log_q_pairs(z, mu, s) -> np.ndarray:
    """(M, N): log q(z_m | x_n) = −½ Σ_j (z_mj − μ_nj)²/s_nj² − Σ_j log s_nj − d/2 log 2π, as matmuls:
    Σ_j (z−μ)²/s² = z²·(1/s²) − 2 z·(μ/s²) + Σ μ²/s²."""
    a, b = 1.0 / s ** 2, mu / s ** 2
    const = -0.5 * np.sum(mu * b, 1) - np.sum(np.log(s), 1) - 0.5 * mu.shape[1] * LOG_2PI
    return -0.5 * (z ** 2) @ a.T + z @ b.T + const


def aggregate_log_density(z, mu, s) -> np.ndarray:
    """(M,): log q(z_m) = logsumexp_n log q(z_m | x_n) − log N, over all N images, in chunks of draws."""
    rows = max(1, CHUNK_PAIRS // len(mu))
    return np.concatenate([logsumexp(log_q_pairs(z[i:i + rows], mu, s), 1) for i in range(0, len(z), rows)]) \
        - math.log(len(mu))


def information_split(mu, s, seed: int = 0, repeats: int = 1) -> dict:
    """I(x; z) and KL(q(z) ‖ p(z)) from `repeats` draws z_n ~ q(z|x_n) per image (module docstring), each
    with its standard error, and their sum (the same draws' estimate of the average KL)."""
    rng = np.random.default_rng([seed, 77])
    info, marginal = [], []
    for _ in range(repeats):
        z = mu + s * rng.standard_normal(mu.shape)
        log_q_own = -0.5 * np.sum(((z - mu) / s) ** 2, 1) - np.sum(np.log(s), 1) - 0.5 * mu.shape[1] * LOG_2PI
        log_q_agg = aggregate_log_density(z, mu, s)
        log_p = -0.5 * np.sum(z ** 2, 1) - 0.5 * mu.shape[1] * LOG_2PI
        info.append(log_q_own - log_q_agg)
        marginal.append(log_q_agg - log_p)
    info, marginal = np.concatenate(info), np.concatenate(marginal)
    se = lambda a: float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")  # noqa: E731
    return {"mutual_information": float(info.mean()), "mutual_information_stderr": se(info),
            "marginal_kl": float(marginal.mean()), "marginal_kl_stderr": se(marginal),
            "kl_mc": float((info + marginal).mean()), "kl_mc_stderr": se(info + marginal), "draws": len(info)}


def diagnose(model, x, seed: int = 0, repeats: int = 1, threshold: float = ACTIVE_THRESHOLD) -> LatentDiagnostics:
    """Every number of the latent diagnostics for the images x (N, D), from q(z|x)'s μ and s."""
    mu, s = posterior_moments(model, x)
    n = len(mu)
    if n < 2:
        raise ValueError("the latent diagnostics need at least 2 images (a variance over images)")
    kl = kl_terms(mu, s)
    return LatentDiagnostics(n, kl.mean(0), kl.std(0, ddof=1) / math.sqrt(n), activity(mu),
                             threshold=threshold, **information_split(mu, s, seed, repeats))


# -- traversals --------------------------------------------------------------------------------
@dataclass
class Traversal:
    values: np.ndarray  # (n,) the values z_j is set to
    dims: np.ndarray  # (k,) the dimensions swept, in the order shown
    images: np.ndarray  # (k, n, D) decoder means E[x|z]
    change: np.ndarray  # (k,) mean over pixels of the largest change of E[x|z] along each sweep


def traverse(model, x_single, dims, span: float = 3.0, steps: int = 9) -> Traversal:
    """Decode the posterior mean μ(x) of one image with one dimension j at a time set to each of `steps`
    values from −span to +span (the prior's ±3σ for span 3), for each j in dims."""
    from .model import decode_mean, encode_mean

    mu = encode_mean(model, np.asarray(x_single, np.float32)[None])[0]
    values, dims = np.linspace(-span, span, steps), np.asarray(dims, int)
    z = np.repeat(mu[None, None], len(dims), 0).repeat(steps, 1)  # (k, n, d)
    z[np.arange(len(dims)), :, dims] = values
    images = decode_mean(model, z.reshape(-1, len(mu))).reshape(len(dims), steps, -1)
    return Traversal(values, dims, images, (images.max(1) - images.min(1)).mean(1))


# -- the linear VAE as probabilistic PCA -------------------------------------------------------------
def data_eigenvalues(x, batch: int = 5000) -> np.ndarray:
    """Eigenvalues of the data covariance (1/N) Σ (x − x̄)(x − x̄)ᵀ, largest first (float64, in chunks)."""
    x = np.asarray(x)
    n, D = len(x), int(np.prod(x.shape[1:]))
    total, gram = np.zeros(D), np.zeros((D, D))
    for i in range(0, n, batch):
        xb = np.asarray(x[i:i + batch], np.float64).reshape(-1, D)
        total += xb.sum(0)
        gram += xb.T @ xb
    mean = total / n
    return np.sort(np.linalg.eigvalsh(gram / n - np.outer(mean, mean)))[::-1]


def ppca_kl_per_dim(eigenvalues, sigma: float, latent_dim: int) -> np.ndarray:
    """The KL per dimension at the optimum of probabilistic PCA (Tipping & Bishop 1999), where the linear
    VAE's optimum lies (Lucas et al. 2019): column j of W is u_j (λ_j − σ²)^½ if λ_j > σ², else 0. The exact
    posterior of z_j then has variance σ²/λ_j and mean with data variance (λ_j − σ²)/λ_j, so

        KL_j = ½ ((λ_j − σ²)/λ_j + σ²/λ_j − log(σ²/λ_j) − 1) = ½ log(λ_j/σ²)   if λ_j > σ², else 0:

    a dimension whose eigenvalue is below the noise σ² collapses to the prior."""
    lam = np.asarray(eigenvalues, np.float64)[:latent_dim]
    lam = np.concatenate([lam, np.zeros(latent_dim - len(lam))])
    return 0.5 * np.log(np.maximum(lam, sigma ** 2) / sigma ** 2)
