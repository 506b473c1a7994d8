"""A training's cost, estimated before it starts (vae_tf.budget): the parameters exactly, the memory against a
real worker's peak, the refusals a server makes from them (ui.training.cost) with the estimate in the message."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vae_tf.budget import training_cost
from vae_tf.config import Config

REPO = Path(__file__).resolve().parent.parent
CONFIGS = [Config(), Config(hidden=(64,), latent_dim=3), Config(decoder="linear", likelihood="gaussian"),
           Config(encoder="conv", decoder="conv", hidden=(32,), conv_filters=8),
           Config(encoder="conv", hidden=(16, 8)), Config(decoder="conv", conv_filters=4)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.encoder}-{c.decoder}-{'x'.join(map(str, c.hidden))}")
def test_the_parameters_are_counted_exactly(config):
    from vae_tf.model import VAE

    for shape in ((28, 28), (9, 13)):
        n = shape[0] * shape[1]
        assert training_cost(config, n, 1000, shape).parameters == VAE(config, n, shape).num_parameters()


def test_the_cost_grows_with_what_the_training_holds_and_does():
    base = training_cost(Config(), 784, 60_000)
    for bigger in (dict(hidden=(1024, 1024)), dict(batch_size=1024), dict(mc_samples=16)):
        c = training_cost(Config(**bigger), 784, 60_000)
        assert c.memory_mb > base.memory_mb and c.gflop > base.gflop - 1e-9, bigger
    assert training_cost(Config(epochs=10), 784, 60_000).gflop == pytest.approx(2 * base.gflop)
    assert training_cost(Config(max_train_images=6000), 784, 60_000).gflop == pytest.approx(base.gflop / 10)
    # the server-killing settings: far over the 1.5 GB a server allows by default
    assert training_cost(Config(hidden=(4096,) * 4, mc_samples=64, batch_size=4096), 784, 60_000).memory_mb > 20_000
    held = training_cost(Config(hidden=(2048,) * 4, mc_samples=64, epochs=500), 784, 60_000)  # measured: 2.95 GB
    assert 2500 < held.memory_mb < 3500 and held.minutes(50) > 24 * 60
    assert base.memory_mb < 1500 and base.minutes(50) < 2


@pytest.mark.slow
def test_the_memory_estimate_holds_a_real_worker_within_a_quarter():
    """A worker training 2 × 1024 units at 16 samples × 256 images (4,096 decoder rows): its peak resident memory
    (VmHWM) against the estimate."""
    config = Config(hidden=(1024, 1024), mc_samples=16, batch_size=256, epochs=1, max_train_images=4096)
    proc = subprocess.Popen([sys.executable, "-m", "vae_tf.worker"], cwd=REPO, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert json.loads(proc.stdout.readline())["event"] == "ready"
        proc.stdin.write(json.dumps({"config": config.to_dict(), "run_dir": str(REPO / "test-artifacts" / "budget"
                                                                               / str(time.time_ns()))}) + "\n")
        proc.stdin.flush()
        peak = 0.0
        for line in proc.stdout:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(status.split("VmHWM:")[1].split()[0]) / 1024)
            if json.loads(line)["event"] == "end":
                assert json.loads(line)["outcome"] == "complete", line
                break
    finally:
        proc.stdin.close()
        proc.wait(60)
    estimate = training_cost(config, 784, 60_000).memory_mb
    assert 0.75 * estimate <= peak <= 1.25 * estimate, (peak, estimate)


def test_the_bundled_sets_shape_is_known_without_loading_it(fashion):
    from vae_tf.data import PUBLISHED_SHAPES

    assert PUBLISHED_SHAPES["fashion_mnist"] == (len(fashion.x_train), fashion.image_shape)


@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_the_disk_estimate_holds_a_saved_run(tmp_path, fashion):
    from vae_tf import runs
    from vae_tf.train import Trainer

    config = Config(epochs=1, max_train_images=1024)
    Trainer(config, fashion, tmp_path / "run").fit()
    written = runs.folder_bytes(tmp_path / "run") / 2**20
    assert 0.9 * written <= training_cost(config, 784, 60_000).disk_mb <= 1.1 * written
    runs.set_owner(tmp_path / "run", "someone")
    assert runs.owned_bytes(tmp_path, "someone") == runs.owned_bytes(tmp_path) == runs.folder_bytes(tmp_path / "run")
    assert runs.owned_bytes(tmp_path, "another") == 0
