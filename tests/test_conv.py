"""Convolutional encoder and decoder: shapes for 28×28 and odd user sizes, what the stack refuses, and a tiny
conv run that trains, checkpoints, resumes exactly, loads back, evaluates and trains mirrored on two devices.

Run as a script (`python tests/test_conv.py mirrored NPZ OUT`) this file is the two-device subprocess."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vae_tf import networks, runs
from vae_tf.config import Config, ConfigError
from vae_tf.data import Dataset
from vae_tf.model import VAE

REPO = Path(__file__).resolve().parent.parent
TINY = dict(encoder="conv", decoder="conv", conv_filters=8, hidden=(16,), latent_dim=2, batch_size=32,
            learning_rate=1e-2, seed=1)
FLAGS = ["--encoder", "conv", "--decoder", "conv", "--conv-filters", "8", "--hidden", "16", "--latent-dim", "2",
         "--batch-size", "32", "--learning-rate", "0.01", "--seed", "1", "--epochs", "1", "--max-train-images", "256"]


@pytest.mark.parametrize("shape", [(28, 28), (20, 12), (13, 17), (8, 8), (64, 64)])
@pytest.mark.parametrize("decoder", ["conv", "mlp"])
def test_conv_shapes(shape, decoder):
    D = shape[0] * shape[1]
    model = VAE(Config(**{**TINY, "decoder": decoder}), D, shape)
    x = np.random.default_rng(0).random((3, D)).astype(np.float32)
    q = model.posterior(x)
    assert q.mean().shape == (3, 2)
    z = np.zeros((4, 3, 2), np.float32)  # leading sample dimensions pass through
    assert model.likelihood(z).mean().shape == (4, 3, D)
    names = model.named_variables()
    assert "encoder/enc_out/kernel" in names and "decoder/dec_out/kernel" in names  # runs.REQUIRED_WEIGHTS
    assert "encoder/enc_conv_1/kernel" in names
    assert ("decoder/dec_conv_1/kernel" in names) == (decoder == "conv")


def test_conv_decoder_covers_every_pixel_of_an_odd_image():
    """The transposed convolutions make ⌈H/4⌉·4 × ⌈W/4⌉·4 and the crop keeps the top-left H × W: each output
    pixel must still depend on z (no constant border left by the crop)."""
    model = VAE(Config(**TINY), 13 * 17, (13, 17))
    z = np.random.default_rng(1).normal(size=(64, 2)).astype(np.float32)
    out = np.asarray(model.likelihood(z).mean())
    assert np.all(out.std(0) > 0)


def test_the_conv_stack_refuses_what_it_cannot_take():
    with pytest.raises(ConfigError, match=r"at least 8×8 pixels .* these are 6×12"):
        VAE(Config(**TINY), 72, (6, 12))
    with pytest.raises(ConfigError, match="needs the image shape: 240 pixels is not a square"):
        VAE(Config(**TINY), 240)
    VAE(Config(**TINY), 784)  # a square is inferred
    VAE(Config(hidden=(8,)), 72)  # the MLP needs no shape at all
    with pytest.raises(ConfigError, match="encoder must be one of mlp, conv"):
        Config(encoder="cnn")


def test_closed_form_only_for_the_linear_decoder():
    from vae_tf.exact import has_closed_form

    gaussian = dict(TINY, likelihood="gaussian")
    assert not has_closed_form(VAE(Config(**gaussian), 64))
    assert has_closed_form(VAE(Config(**{**gaussian, "decoder": "linear"}), 64))  # any encoder: p(x) is the decoder's


def test_steps_per_call_counts_the_convolutions():
    from vae_tf.step import default_steps_per_call

    mlp, conv = Config(), Config(encoder="conv", decoder="conv")
    enc, dec = networks.forward_macs(conv, 784, (28, 28))
    assert enc > networks.forward_macs(mlp.replace(hidden=(512, 256)), 784)[0] / 10
    assert default_steps_per_call(conv, 784, (28, 28)) < default_steps_per_call(mlp, 784)


def odd_dataset(shape=(13, 17), n_train=256, n_test=64, seed=0) -> Dataset:
    """Two classes of 13×17 images: a bright left or right half, plus noise."""
    rng = np.random.default_rng(seed)

    def images(n):
        y = rng.integers(0, 2, n)
        x = rng.integers(0, 60, (n, *shape))
        half = shape[1] // 2
        x[y == 0, :, :half] += 190
        x[y == 1, :, half:] += 190
        return x.clip(0, 255).astype(np.uint8), y

    (xt, yt), (xs, ys) = images(n_train), images(n_test)
    return Dataset("odd", xt, yt, xs, ys, ("left", "right"))


@pytest.fixture(scope="module")
def odd_npz(tmp_path_factory):
    ds = odd_dataset()
    path = tmp_path_factory.mktemp("odd") / "odd.npz"
    np.savez(path, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    return path


def test_a_conv_run_trains_checkpoints_resumes_loads_and_evaluates(odd_npz, tmp_path):
    from vae_tf.data import load_dataset
    from vae_tf.evaluate import evaluate_run
    from vae_tf.train import Trainer, train

    ds = load_dataset(str(odd_npz))
    config = Config(dataset=str(odd_npz), epochs=2, **TINY)
    whole = train(config, ds, tmp_path / "whole")
    first = Trainer(config.replace(epochs=1), ds, tmp_path / "resumed").fit()
    assert first.steps_done == 8
    resumed = Trainer(config, ds, tmp_path / "resumed", resume=True).fit()
    assert resumed.steps_done == whole.steps_done == 16
    a, b = whole.model.named_weights(), resumed.model.named_weights()
    for k in a:  # a resumed run continues exactly where it stopped
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    run = runs.load_run(tmp_path / "resumed")
    assert run.model.image_shape == (13, 17) and run.meta["image_shape"] == [13, 17]
    assert runs.run_problem(tmp_path / "resumed") is None
    x = ds.test_images("bernoulli")[:5]
    np.testing.assert_allclose(run.model.encode_mean(x), resumed.model.encode_mean(x), atol=1e-6)
    out = evaluate_run(tmp_path / "resumed", num_images=6, k=50)
    assert np.isfinite(out["log_px"]) and out["log_px"] >= out["elbo_same_draws"] - 1e-6
    assert np.isfinite(out["grid_log_px"])  # a 2-D latent: the grid answer works on a conv model too
    assert len(out["kl_per_dim"]) == 2 and 0 <= out["active_units"] <= 2


def child_mirrored(npz: str, out: str):
    """Two logical CPUs; the tiny conv run trained on one device and mirrored on two, through the CLI."""
    import contextlib
    import io

    import tensorflow as tf

    from vae_tf.__main__ import main

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    report = {}
    for name, extra in (("one", []), ("mirrored", ["--strategy", "mirrored"])):
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            report[name] = main(["train", "--data", npz, "--out", f"{out}/{name}", *FLAGS, *extra])
        report[f"{name}_head"] = err.getvalue().splitlines()[0]
    print(json.dumps(report))


def test_a_conv_run_trained_mirrored_on_two_devices_is_the_one_device_run(odd_npz, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, __file__, "mirrored", str(odd_npz), str(tmp_path)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["one"] == report["mirrored"] == 0
    assert report["mirrored_head"].endswith("on 2 device(s)")
    one, two = runs.load_run(tmp_path / "one"), runs.load_run(tmp_path / "mirrored")
    wa, wb = one.model.named_weights(), two.model.named_weights()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=1e-5, err_msg=k)


if __name__ == "__main__":
    if sys.argv[1] == "mirrored":
        sys.path.insert(0, str(REPO))
        child_mirrored(sys.argv[2], sys.argv[3])
