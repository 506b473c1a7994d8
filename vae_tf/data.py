"""Image data sets, kept as uint8 in memory and converted per batch.

Three sources: the bundled Fashion-MNIST (offline, checked against its
SHA256SUMS), MNIST through Keras's downloader, and a user's own `.npz`.
Bernoulli models see binarized pixels: a fresh draw every epoch for training
(dynamic binarization), and one fixed, seeded draw of the test set so numbers
compare across runs and with the literature.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUNDLED_DIR = Path(__file__).parent / "bundled" / "fashion-mnist"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))
TEST_BINARIZATION_SEED = 1234  # fixed across runs on purpose: every run is scored on the same bits
PUBLISHED_SHAPES = {"fashion_mnist": (60_000, (28, 28)), "mnist": (60_000, (28, 28))}  # training images, H × W
MAX_NPZ_BYTES = 200 * 2**20
# The arrays once decompressed (a small .npz of zeros can hold gigabytes). Test images become float32, 4× their
# uint8 size, once in the trainer and once in the app's cache: 128 MB keeps one upload near 1 GB at worst, and
# holds an MNIST-sized set (55 MB as uint8) twice over.
MAX_UNPACKED_BYTES = 128 * 2**20
MAX_SIDE = 64


class DataError(ValueError):
    """A data set that cannot be read; the message says what was expected."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # uint8, (N, H, W)
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: tuple[str, ...] = ()

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[1:3])

    @property
    def num_pixels(self) -> int:
        return int(np.prod(self.image_shape))

    def label_name(self, label) -> str:
        if label is None:
            return ""
        label = int(label)
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def test_images(self, likelihood: str) -> np.ndarray:
        """The test set as the model sees it: flat float32, fixed binarization for Bernoulli."""
        return to_model_space(self.x_test, likelihood, seed=TEST_BINARIZATION_SEED)

    def train_images(self, likelihood: str, seed: int = TEST_BINARIZATION_SEED) -> np.ndarray:
        return to_model_space(self.x_train, likelihood, seed=seed)


def to_model_space(x_uint8: np.ndarray, likelihood: str, seed: int) -> np.ndarray:
    """uint8 images → flat float32: {0,1} draws with P(1) = pixel/255 for Bernoulli, pixel/255 for Gaussian."""
    x = x_uint8.reshape(len(x_uint8), -1).astype(np.float32) / 255.0
    if likelihood == "bernoulli":
        u = np.random.default_rng(seed).random(x.shape, dtype=np.float32)
        x = (u < x).astype(np.float32)
    return x


def load_dataset(name: str) -> Dataset:
    """fashion_mnist, mnist, or a path to a .npz file."""
    if name == "fashion_mnist":
        return load_fashion_mnist()
    if name == "mnist":
        return load_mnist()
    if str(name).endswith(".npz"):
        return load_npz(name)
    raise DataError(f"unknown data set {name!r}: use fashion_mnist, mnist, or a path to a .npz file")


def load_fashion_mnist(directory: Path = BUNDLED_DIR) -> Dataset:
    directory = Path(directory)
    sums = _read_sums(directory / "SHA256SUMS")
    arrays = {}
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        path = directory / f"{stem}.gz"
        if not path.exists():
            raise DataError(f"bundled Fashion-MNIST file is missing: {path}")
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if sums.get(path.name) != digest:
            raise DataError(f"{path} does not match its SHA256SUMS entry (damaged or replaced file)")
        arrays[stem] = _parse_idx(gzip.decompress(raw), path)
    return Dataset("fashion_mnist", arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"],
                   arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"], FASHION_CLASSES)


def load_mnist() -> Dataset:
    """MNIST through Keras's own downloader and cache (~/.keras/datasets)."""
    import keras  # deferred: Keras brings TensorFlow, which the rest of this module never needs

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as e:  # URLError, socket errors, HTTP errors, a partial file ...
        raise DataError(
            "MNIST could not be downloaded (no internet connection here?). "
            "Use the bundled fashion_mnist data set, which works offline, "
            f"or upload your own .npz. Details: {type(e).__name__}: {e}") from None
    return Dataset("mnist", x_train, y_train, x_test, y_test, MNIST_CLASSES)


def load_npz(source, name: str | None = None, max_bytes: int = MAX_NPZ_BYTES,
             max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> Dataset:
    """A user's .npz: x_train and x_test (N, H, W) or (N, H, W, 1), uint8 0–255 or float 0–1;
    optional integer y_train, y_test. Pickled objects are refused (allow_pickle=False)."""
    expected = ("expected a .npz with arrays x_train and x_test of shape (N, H, W) or (N, H, W, 1), "
                "uint8 0–255 or float 0–1, and optional integer labels y_train, y_test")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise DataError(f"no such .npz file: {path}")
        if path.stat().st_size > max_bytes:
            raise DataError(f"{path.name} is {path.stat().st_size / 2**20:.0f} MB; "
                            f"the limit is {max_bytes / 2**20:.0f} MB")
        data = path.read_bytes()
    else:
        data = bytes(source)
        name = name or "upload.npz"
        if len(data) > max_bytes:
            raise DataError(f"{name} is {len(data) / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    if not data.startswith(b"PK"):  # a .npz is a zip; otherwise np.load would try (and refuse) a pickle
        raise DataError(f"{name} is not a .npz (zip) file: {expected}")
    unpacked = _unpacked_size(data)
    if unpacked > max_unpacked_bytes:
        raise DataError(f"{name} holds {unpacked / 2**20:,.0f} MB of arrays once decompressed; the limit is "
                        f"{max_unpacked_bytes / 2**20:.0f} MB (uint8 images take a quarter of float32's room)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            keys = set(z.files)
            missing = {"x_train", "x_test"} - keys
            if missing:
                raise DataError(f"{name} has no {', '.join(sorted(missing))}: {expected}")
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test") if k in keys}
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataError(f"{name} holds pickled Python objects, which are refused for safety: {expected}") from None
        raise DataError(f"{name} could not be read as .npz ({e}): {expected}") from None
    except Exception as e:
        raise DataError(f"{name} is not a readable .npz file ({type(e).__name__}): {expected}") from None

    x_train = _check_images(arrays["x_train"], "x_train", name, expected)
    x_test = _check_images(arrays["x_test"], "x_test", name, expected)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{name}: x_train images are {x_train.shape[1:]} but x_test images are {x_test.shape[1:]}")
    y_train = _check_labels(arrays.get("y_train"), len(x_train), "y_train", name)
    y_test = _check_labels(arrays.get("y_test"), len(x_test), "y_test", name)
    classes = ()
    if y_train is not None or y_test is not None:
        top = max(int(y.max()) for y in (y_train, y_test) if y is not None and len(y))
        classes = tuple(str(i) for i in range(top + 1))
    return Dataset(name, x_train, y_train, x_test, y_test, classes)


def _unpacked_size(data: bytes) -> int:
    """The decompressed size of a zip's members, from its directory, before anything is decompressed.
    zipfile never yields more than a member's declared size, so the directory cannot understate it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return 0  # not a readable zip: np.load below says so


def _check_images(x: np.ndarray, key: str, name: str, expected: str) -> np.ndarray:
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise DataError(f"{name}: {key} has shape {x.shape}; {expected}")
    if len(x) == 0:
        raise DataError(f"{name}: {key} holds zero images")
    if not (2 <= x.shape[1] <= MAX_SIDE and 2 <= x.shape[2] <= MAX_SIDE):
        raise DataError(f"{name}: {key} images are {x.shape[1]}×{x.shape[2]}; "
                        f"sides from 2 to {MAX_SIDE} pixels are accepted")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            raise DataError(f"{name}: {key} contains NaN or infinite pixels")
        if x.min() < 0 or x.max() > 1:
            raise DataError(f"{name}: float {key} must lie in [0, 1]; found values from {x.min():g} to {x.max():g}")
        return np.round(x * 255).astype(np.uint8)
    raise DataError(f"{name}: {key} has dtype {x.dtype}; {expected}")


def _check_labels(y, n: int, key: str, name: str):
    if y is None:
        return None
    if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != n:
        raise DataError(f"{name}: {key} must be {n} integer labels, one per image; "
                        f"got dtype {y.dtype}, shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() > 999):
        raise DataError(f"{name}: {key} labels must lie in 0..999")
    return y.astype(np.int64)


def _read_sums(path: Path) -> dict[str, str]:
    if not path.exists():
        raise DataError(f"bundled Fashion-MNIST checksum file is missing: {path}")
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """The IDX format: 2 zero bytes, a type byte (0x08 = uint8), ndim, then big-endian int32 sizes."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(tuple(int(d) for d in dims))


# -- picking images ---------------------------------------------------------------------------
def pick_random(n_total: int, n: int, seed: int, labels=None, classes=None) -> np.ndarray:
    """n distinct indices drawn with `seed`, from all images or only those whose label is in `classes`."""
    pool = np.arange(n_total)
    if classes is not None and labels is not None:
        pool = pool[np.isin(np.asarray(labels), list(classes))]
    if len(pool) == 0:
        return pool
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))


def pick_by_class(labels, classes, per_class: int, seed: int) -> np.ndarray:
    """`per_class` random images of each class in `classes`, grouped by class in the order given."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = []
    for c in classes:
        pool = np.flatnonzero(labels == c)
        if len(pool):
            out.append(np.sort(rng.choice(pool, size=min(per_class, len(pool)), replace=False)))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def pick_one(labels, cls, seed: int) -> int:
    """One random image of class `cls`."""
    pool = np.flatnonzero(np.asarray(labels) == cls)
    if len(pool) == 0:
        raise ValueError(f"no image of class {cls}")
    return int(np.random.default_rng(seed).choice(pool))
