"""Thin numpy-in, numpy-out calls into the model for pages (TFP wants stateless seeds as int32 pairs).

No tf.function here: these are eager one-off calls; compiled functions live in vae_tf."""
from __future__ import annotations

import numpy as np


def tf_seed(seed: int, stream: int = 0) -> np.ndarray:
    """A stateless TFP seed: an int32 pair (a plain int would select the stateful samplers)."""
    return np.array([int(seed) % 2**31, stream], np.int32)


def reconstruct(model, x, sample: bool = False, seed: int = 0) -> np.ndarray:
    return np.asarray(model.reconstruct(np.asarray(x, np.float32), sample=sample, seed=tf_seed(seed, 1)))


def sample_prior(model, n: int, seed: int) -> np.ndarray:
    return np.asarray(model.sample_prior(int(n), seed=tf_seed(seed, 2)))


def encode_mean(model, x, batch: int = 2000) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.concatenate([np.asarray(model.encode_mean(x[i:i + batch])) for i in range(0, len(x), batch)])


def decode_mean(model, z) -> np.ndarray:
    return np.asarray(model.mean_image(np.asarray(z, np.float32)))
