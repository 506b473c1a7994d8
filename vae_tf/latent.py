"""Walking the latent space: paths between two codes, and a 2-D view of it.

Linear interpolation z(t) = (1 − t)·z₀ + t·z₁ cuts through the middle of the space: between
two codes of similar length ‖z‖ its midpoint is shorter than either end. Under the prior
N(0, I) in d dimensions almost all mass lies near the sphere ‖z‖ ≈ √d, so those shorter
midpoints are codes the decoder rarely saw. Spherical interpolation (slerp) turns along the
great circle instead (White, 2016, "Sampling generative networks") while the length
moves linearly from ‖z₀‖ to ‖z₁‖.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARALLEL_EPS = 1e-6  # below this sin Ω the two codes point (anti)parallel and slerp has no unique plane


def path_times(steps: int) -> np.ndarray:
    if steps < 2:
        raise ValueError(f"a path needs at least 2 steps (its two ends); got {steps}")
    return np.linspace(0.0, 1.0, steps)


def lerp(z0, z1, steps: int) -> np.ndarray:
    """(steps, d): z(t) = (1 − t)·z₀ + t·z₁ for t evenly spaced in [0, 1]."""
    z0, z1 = _pair(z0, z1)
    t = path_times(steps)[:, None]
    return (1 - t) * z0 + t * z1


def slerp(z0, z1, steps: int) -> np.ndarray:
    """(steps, d): the direction turns along the great circle, the length moves linearly.

        u(t) = sin((1 − t)Ω)/sin Ω · û₀ + sin(tΩ)/sin Ω · û₁     (û = z/‖z‖, Ω = angle between them)
        z(t) = ((1 − t)‖z₀‖ + t‖z₁‖) · u(t)

    For ‖z₀‖ = ‖z₁‖ this is the textbook slerp and keeps that length. The textbook formula
    applied to codes of unequal length can overshoot both (near-opposite codes give lengths
    many times either end's), so the length is interpolated separately. When z₀ and z₁ are
    (anti)parallel the plane of rotation is undefined: fall back to lerp."""
    z0, z1 = _pair(z0, z1)
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 == 0 or n1 == 0:
        return lerp(z0, z1, steps)
    u0, u1 = z0 / n0, z1 / n1
    omega = np.arccos(np.clip(np.dot(u0, u1), -1.0, 1.0))
    sin = np.sin(omega)
    if sin < PARALLEL_EPS:
        return lerp(z0, z1, steps)
    t = path_times(steps)[:, None]
    u = (np.sin((1 - t) * omega) * u0 + np.sin(t * omega) * u1) / sin
    return ((1 - t) * n0 + t * n1) * u


def path(z0, z1, steps: int, kind: str) -> np.ndarray:
    if kind == "linear":
        return lerp(z0, z1, steps)
    if kind == "spherical":
        return slerp(z0, z1, steps)
    raise ValueError(f"kind must be 'linear' or 'spherical'; got {kind!r}")


def _pair(z0, z1):
    z0, z1 = np.asarray(z0, np.float64).reshape(-1), np.asarray(z1, np.float64).reshape(-1)
    if z0.shape != z1.shape:
        raise ValueError(f"the two codes differ in size: {z0.shape[0]} and {z1.shape[0]}")
    return z0, z1


# -- a 2-D view ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Projection:
    """z ↦ (z − mean)·componentsᵀ: the identity for a 2-D latent, else the top two principal axes."""
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d), orthonormal rows
    explained: np.ndarray  # (2,) fraction of the variance along each axis
    method: str  # "identity" or "pca"

    def __call__(self, z) -> np.ndarray:
        z = np.asarray(z, np.float64)
        return (z - self.mean) @ self.components.T

    @property
    def axis_titles(self) -> tuple[str, str]:
        if self.method == "identity":
            return "z₁", "z₂"
        return tuple(f"PC{i + 1} ({100 * e:.0f}% of variance)" for i, e in enumerate(self.explained))


def pca(z, n_components: int = 2) -> Projection:
    """Principal axes of the rows of z from the SVD of the centred data: z − mean = U S Vᵀ, axes = rows of Vᵀ.

    Each axis's sign is fixed so its largest loading is positive: the same data always gives the same picture."""
    z = np.asarray(z, np.float64)
    if z.ndim != 2 or z.shape[1] < n_components or len(z) < 2:
        raise ValueError(f"PCA to {n_components}-D needs at least 2 rows of at least {n_components} columns; "
                         f"got {z.shape}")
    mean = z.mean(0)
    _, s, vt = np.linalg.svd(z - mean, full_matrices=False)
    comps = vt[:n_components]
    signs = np.sign(comps[np.arange(n_components), np.abs(comps).argmax(1)])
    comps = comps * signs[:, None]
    var = s ** 2
    total = var.sum()
    explained = var[:n_components] / total if total > 0 else np.zeros(n_components)
    return Projection(mean, comps, explained, "pca")


def projection_2d(z) -> Projection:
    """The latent itself when it is 2-D (no distortion), otherwise its PCA projection."""
    z = np.asarray(z, np.float64)
    d = z.shape[1]
    if d == 2:
        return Projection(np.zeros(2), np.eye(2), np.array([np.nan, np.nan]), "identity")
    if d < 2:
        raise ValueError("a 2-D map needs a latent with at least 2 dimensions")
    return pca(z)


def manifold_codes(proj: Projection, points, side: int) -> tuple[tuple, tuple, tuple]:
    """(u, center, axes) of a decoded manifold of side × side codes, center + u_j·axes[0] + u_i·axes[1]: u at evenly
    spaced quantiles of N(0, 1) from 5 % to 95 % (Kingma & Welling, fig. 4: as many codes per unit of prior
    mass); for a 2-D latent the axes are z₁ and z₂ themselves, else the two principal axes of the codes, each
    scaled by the spread of the projected points along it, every other coordinate held at their mean."""
    from statistics import NormalDist

    u = tuple(NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, side))
    if proj.method == "identity":
        return u, (0.0, 0.0), ((1.0, 0.0), (0.0, 1.0))
    sd = np.asarray(points).std(0)
    return u, tuple(proj.mean), tuple(tuple(c * s) for c, s in zip(proj.components, sd))
