"""Data: the bundled Fashion-MNIST, MNIST offline, users' .npz files, and binarization."""
import hashlib
import io
import shutil
import urllib.error

import numpy as np
import pytest

from vae_tf import data
from vae_tf.data import BUNDLED_DIR, FASHION_CLASSES, DataError, Dataset, load_dataset, load_fashion_mnist, load_npz


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def images(n, side=8, seed=0, dtype=np.uint8):
    x = np.random.default_rng(seed).integers(0, 256, (n, side, side))
    return x.astype(dtype)


# -- bundled Fashion-MNIST ------------------------------------------------------------
def test_fashion_mnist_loads_offline(fashion):
    assert fashion.name == "fashion_mnist"
    assert fashion.x_train.shape == (60000, 28, 28) and fashion.x_train.dtype == np.uint8
    assert fashion.x_test.shape == (10000, 28, 28) and fashion.x_test.dtype == np.uint8
    assert fashion.class_names == FASHION_CLASSES and len(fashion.class_names) == 10
    # Fashion-MNIST is balanced: 6000 training and 1000 test images of each class.
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10
    assert np.bincount(fashion.y_test).tolist() == [1000] * 10
    assert fashion.x_train.max() == 255 and fashion.x_train.min() == 0
    assert (fashion.image_shape, fashion.num_pixels) == ((28, 28), 784)
    assert fashion.label_name(9) == "Ankle boot" and fashion.label_name(None) == ""
    assert load_dataset("fashion_mnist").x_test[0].tobytes() == fashion.x_test[0].tobytes()


def test_tampered_bundle_refused(tmp_path):
    copy = tmp_path / "fashion"
    shutil.copytree(BUNDLED_DIR, copy)
    target = copy / "train-images-idx3-ubyte.gz"
    sums = dict(reversed(line.split()) for line in (copy / "SHA256SUMS").read_text().splitlines() if line.strip())
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sums[target.name]  # intact before the flip
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz does not match its SHA256SUMS"):
        load_fashion_mnist(copy)


def test_missing_bundle_file_refused(tmp_path):
    shutil.copy(BUNDLED_DIR / "SHA256SUMS", tmp_path / "SHA256SUMS")
    with pytest.raises(DataError, match="missing.*train-images-idx3-ubyte.gz"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(DataError, match="checksum file is missing"):
        load_fashion_mnist(tmp_path / "nowhere")


@pytest.mark.parametrize("error", [urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
                                   OSError("Network is unreachable")])
def test_mnist_offline_names_the_bundled_set(monkeypatch, error):
    import keras

    def offline():
        raise error

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    for load in (data.load_mnist, lambda: load_dataset("mnist")):
        with pytest.raises(DataError) as e:
            load()
        assert "fashion_mnist" in str(e.value) and "offline" in str(e.value)
        assert type(error).__name__ in str(e.value)


def test_mnist_uses_keras_downloader(monkeypatch):
    import keras

    x, y = images(6, side=28), np.arange(6) % 10
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: ((x, y), (x[:2], y[:2])))
    ds = data.load_mnist()
    assert ds.name == "mnist" and ds.x_train.shape == (6, 28, 28) and ds.class_names == tuple("0123456789")


def test_unknown_dataset_name():
    with pytest.raises(DataError, match="unknown data set 'cifar'"):
        load_dataset("cifar")


# -- a user's .npz: accepted ------------------------------------------------------------
def test_npz_uint8_from_path_and_bytes(tmp_path):
    xtr, xte = images(20, seed=1), images(5, seed=2)
    ytr, yte = np.arange(20) % 3, np.array([0, 1, 2, 2, 4])
    raw = npz_bytes(x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    path = tmp_path / "mine.npz"
    path.write_bytes(raw)
    loaded = ((load_npz(path), "mine.npz"), (load_npz(raw), "upload.npz"), (load_dataset(str(path)), "mine.npz"))
    for ds, name in loaded:
        assert ds.name == name
        np.testing.assert_array_equal(ds.x_train, xtr)
        np.testing.assert_array_equal(ds.x_test, xte)
        np.testing.assert_array_equal(ds.y_test, yte)
        assert ds.y_train.dtype == np.int64
        assert ds.class_names == ("0", "1", "2", "3", "4")  # up to the largest label in either split
        assert ds.num_pixels == 64


def test_npz_channel_axis_and_no_labels():
    x = images(10, side=12)
    ds = load_npz(npz_bytes(x_train=x[..., None], x_test=x[:3, ..., None]), name="c.npz")
    assert ds.x_train.shape == (10, 12, 12) and ds.x_test.shape == (3, 12, 12)
    np.testing.assert_array_equal(ds.x_train, x)
    assert ds.y_train is None and ds.y_test is None and ds.class_names == ()


def test_npz_floats_in_unit_interval_become_uint8():
    x = np.array([[[0.0, 1.0], [0.2, 0.5]]] * 3, np.float32)
    ds = load_npz(npz_bytes(x_train=x, x_test=x[:1].astype(np.float64)))
    assert ds.x_train.dtype == np.uint8
    assert ds.x_train[0].tolist() == [[0, 255], [51, 128]]
    assert ds.x_test[0].tolist() == [[0, 255], [51, 128]]


# -- a user's .npz: refused ------------------------------------------------------------
GOOD = images(4)


@pytest.mark.parametrize("arrays, pattern", [
    (dict(x_train=GOOD), r"has no x_test"),
    (dict(x_test=GOOD), r"has no x_train"),
    (dict(x_train=GOOD[0], x_test=GOOD), r"x_train has shape \(8, 8\)"),
    (dict(x_train=GOOD[None], x_test=GOOD), r"x_train has shape \(1, 4, 8, 8\)"),
    (dict(x_train=GOOD, x_test=GOOD[..., None].repeat(3, -1)), r"x_test has shape \(4, 8, 8, 3\)"),
    (dict(x_train=GOOD.astype(np.int64), x_test=GOOD), r"x_train has dtype int64"),
    (dict(x_train=np.full((2, 3, 3), "abc"), x_test=GOOD), r"x_train has dtype <U3"),
    (dict(x_train=GOOD.astype(bool), x_test=GOOD), r"x_train has dtype bool"),
    (dict(x_train=np.where(GOOD > 100, np.nan, 0.5), x_test=GOOD), r"x_train contains NaN"),
    (dict(x_train=GOOD.astype(np.float32), x_test=GOOD),
     r"float x_train must lie in \[0, 1\]; found values from 0 to 255"),
    (dict(x_train=GOOD, x_test=-GOOD.astype(np.float32) / 255), r"float x_test must lie in \[0, 1\]"),
    (dict(x_train=GOOD[:0], x_test=GOOD), r"x_train holds zero images"),
    (dict(x_train=GOOD, x_test=images(2, side=10)), r"x_train images are \(8, 8\) but x_test images are \(10, 10\)"),
    (dict(x_train=images(2, side=65), x_test=images(2, side=65)), r"65×65; sides from 2 to 64"),
    (dict(x_train=GOOD, x_test=GOOD, y_train=np.arange(3)),
     r"y_train must be 4 integer labels, one per image.*shape \(3,\)"),
    (dict(x_train=GOOD, x_test=GOOD, y_test=np.ones(4)), r"y_test must be 4 integer labels.*float64"),
    (dict(x_train=GOOD, x_test=GOOD, y_test=-np.ones(4, int)), r"y_test labels must lie in 0..999"),
])
def test_npz_refused_with_clear_message(arrays, pattern):
    with pytest.raises(DataError, match=pattern) as e:
        load_npz(npz_bytes(**arrays), name="bad.npz")
    assert str(e.value).startswith("bad.npz")


def test_npz_pickled_objects_refused():
    obj = np.empty(4, dtype=object)
    obj[:] = [GOOD[0]] * 4
    raw = npz_bytes(x_train=obj, x_test=obj)
    with pytest.raises(DataError, match="pickled Python objects, which are refused"):
        load_npz(raw, name="evil.npz")


@pytest.mark.parametrize("raw, pattern", [
    (b"this is not an npz at all" * 10, r"not a \.npz \(zip\) file"),
    (b"", r"not a \.npz \(zip\) file"),
    (npz_bytes(x_train=GOOD, x_test=GOOD)[:100], r"not a readable \.npz file"),  # truncated zip
    (npy_bytes(GOOD), r"not a \.npz \(zip\) file"),  # a single .npy array
])
def test_npz_garbage_bytes_refused(raw, pattern):
    with pytest.raises(DataError, match=pattern) as e:
        load_npz(raw)
    assert "expected a .npz with arrays x_train and x_test" in str(e.value)


def test_npz_size_limit(tmp_path):
    raw = npz_bytes(x_train=GOOD, x_test=GOOD)
    path = tmp_path / "big.npz"
    path.write_bytes(raw)
    for source in (path, raw):
        with pytest.raises(DataError, match="the limit is"):
            load_npz(source, max_bytes=len(raw) - 1)
        assert load_npz(source, max_bytes=len(raw)).x_train.shape == (4, 8, 8)
    with pytest.raises(DataError, match="no such .npz file"):
        load_npz(tmp_path / "absent.npz")


# -- what the model sees ----------------------------------------------------------------
def test_bernoulli_test_images_fixed_binary_draws(tiny_dataset):
    a, b = tiny_dataset.test_images("bernoulli"), tiny_dataset.test_images("bernoulli")
    assert a.dtype == np.float32 and a.shape == (128, 64)
    assert set(np.unique(a).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)  # the same bits on every call, in every run
    p = tiny_dataset.x_test.reshape(128, 64) / 255.0
    assert np.all(a[p == 0] == 0) and np.all(a[p == 1] == 1)
    # P(pixel = 1) = grey level: the mean draw matches the mean grey level within sampling error.
    assert abs(a.mean() - p.mean()) < 4 * np.sqrt(0.25 / a.size)


def test_train_binarization_depends_on_seed(tiny_dataset):
    a, b = tiny_dataset.train_images("bernoulli", seed=1), tiny_dataset.train_images("bernoulli", seed=2)
    assert a.shape == (512, 64) and not np.array_equal(a, b)
    np.testing.assert_array_equal(a, tiny_dataset.train_images("bernoulli", seed=1))


def test_gaussian_test_images_are_grey_levels(tiny_dataset):
    x = tiny_dataset.test_images("gaussian")
    assert x.dtype == np.float32 and x.shape == (128, 64)
    np.testing.assert_array_equal(x, tiny_dataset.x_test.reshape(128, 64).astype(np.float32) / 255)
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_dataset_label_names():
    ds = Dataset("t", GOOD, None, GOOD, None, ("a", "b"))
    assert [ds.label_name(i) for i in (0, 1, 7)] == ["a", "b", "7"]
