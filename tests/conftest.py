"""Shared fixtures: small data sets that make tiny models train in a second."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vae_tf.data import Dataset, load_fashion_mnist  # noqa: E402


def make_tiny_dataset(n_train=512, n_test=128, side=8, seed=0) -> Dataset:
    """Four classes of 8×8 uint8 images (a bright quadrant each, plus noise): learnable in a few steps."""
    rng = np.random.default_rng(seed)

    def images(n):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 60, (n, side, side))
        h = side // 2
        for c in range(4):
            r, k = divmod(c, 2)
            x[y == c, r * h:(r + 1) * h, k * h:(k + 1) * h] += 190
        return x.clip(0, 255).astype(np.uint8), y.astype(np.int64)

    x_train, y_train = images(n_train)
    x_test, y_test = images(n_test)
    return Dataset("tiny", x_train, y_train, x_test, y_test, ("TL", "TR", "BL", "BR"))


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    return make_tiny_dataset()


@pytest.fixture(scope="session")
def fashion() -> Dataset:
    return load_fashion_mnist()


@pytest.fixture(scope="session")
def npz(tmp_path_factory, tiny_dataset):
    """The tiny data set written as a user's .npz file, for the CLI and the distributed runs."""
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    ds = tiny_dataset
    np.savez(path, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    return path
