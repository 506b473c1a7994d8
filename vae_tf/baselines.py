"""A model that ignores its input: what a VAE must beat to have learned anything.

Each pixel on its own, fitted to the training set: Bernoulli with p_i = the mean grey level of
pixel i (the probability that dynamic binarization turns it on), or Gaussian N(m_i, v_i) with the
pixel's mean and variance. Its test log-likelihood is a sum over pixels of exact log-densities.
"""
from __future__ import annotations

import numpy as np

from .data import Dataset

PROB_FLOOR = 1e-3  # a pixel never on in training still gets a little probability
VAR_FLOOR = 1e-4  # likewise a pixel that never varies


def independent_pixels(dataset: Dataset, likelihood: str) -> float:
    """Mean test log p(x) (nats/image) of the pixel-independent model fitted on the training images."""
    m, v = _pixel_moments(dataset.x_train.reshape(len(dataset.x_train), -1))
    x = dataset.test_images(likelihood).astype(np.float64)
    if likelihood == "bernoulli":
        p = np.clip(m, PROB_FLOOR, 1 - PROB_FLOOR)
        return float(np.mean(x @ np.log(p) + (1 - x) @ np.log1p(-p)))
    v = np.maximum(v, VAR_FLOOR)
    return float(np.mean(-0.5 * (((x - m) ** 2) / v + np.log(2 * np.pi * v)).sum(1)))


def _pixel_moments(x_uint8: np.ndarray, rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's mean and variance in [0, 1], summed block by block: no float copy of the training set."""
    s = np.zeros(x_uint8.shape[1])
    s2 = np.zeros(x_uint8.shape[1])
    for i in range(0, len(x_uint8), rows):
        block = x_uint8[i:i + rows].astype(np.float64) / 255.0
        s += block.sum(0)
        s2 += (block * block).sum(0)
    m = s / len(x_uint8)
    return m, np.maximum(s2 / len(x_uint8) - m * m, 0.0)
