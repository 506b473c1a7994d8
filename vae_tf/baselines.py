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
    train = dataset.x_train.reshape(len(dataset.x_train), -1).astype(np.float64) / 255.0
    x = dataset.test_images(likelihood).astype(np.float64)
    if likelihood == "bernoulli":
        p = np.clip(train.mean(0), PROB_FLOOR, 1 - PROB_FLOOR)
        return float(np.mean(x @ np.log(p) + (1 - x) @ np.log1p(-p)))
    m, v = train.mean(0), np.maximum(train.var(0), VAR_FLOOR)
    return float(np.mean(-0.5 * (((x - m) ** 2) / v + np.log(2 * np.pi * v)).sum(1)))
