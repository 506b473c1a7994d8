"""What a training will cost, estimated from its config before it starts: the peak memory of its process
and its arithmetic, so that a server can refuse up front what would not fit (ui.training).

Memory of the training process (vae_tf.worker), in bytes:

    BASE + BYTES_PER_PARAMETER · P + BYTES_PER_ACTIVATION · (B · Σ encoder units + B · S · Σ decoder units)
         + N · D   (the training images, uint8, beyond the bundled set's)

P the parameters; B the batch, S the samples per image (the decoder sees B·S rows); Σ units the widths of
every layer's output (a conv layer's feature map counts every pixel of every channel), pixels included.
BASE is a worker with TensorFlow imported, the bundled data loaded and its step compiled; a parameter costs
its weight, gradient, Adam's two moments and the compiled step's copies of them; an activation its forward
value and its gradient, with the likelihood's temporaries. The coefficients are fitted to the peak resident
memory of workers training MLPs from 1 M to 29 M parameters and from 128 to 16,384 decoder rows
(tests/test_budget.py holds one such worker to its estimate).

Work: 2 FLOPs per multiply-add, forward and twice that backward, for every image of every epoch.

Disk: the run's weights and Adam's two moments (float32, stored uncompressed), and its history, a JSON row
of four numbers per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from .config import Config
from .shapes import feature_grid, forward_macs, resolve_image_shape

BASE_BYTES = 1100 * 2**20
BYTES_PER_PARAMETER = 52
BYTES_PER_ACTIVATION = 6.5
BUNDLED_IMAGES = 60_000  # the bundled training set's images, counted in BASE
BYTES_PER_HISTORY_STEP = 80  # one [step, elbo, recon, kl] row of history.json


@dataclass(frozen=True)
class Cost:
    memory_mb: float  # peak resident memory of the training process
    gflop: float  # the whole training's arithmetic
    parameters: int
    disk_mb: float = 0.0  # the run's folder once written

    def minutes(self, gflops: float) -> float:
        """At a sustained rate of `gflops` GFLOP/s."""
        return self.gflop / gflops / 60


def _layers(config: Config, num_pixels: int, image_shape) -> tuple[list[int], list[int], int]:
    """(encoder output widths, decoder output widths, parameters), pixels included in the decoder's."""
    d, f, hidden = config.latent_dim, config.conv_filters, list(config.hidden)
    params, enc = 0, []
    enc_in = num_pixels
    if config.encoder == "conv":
        (h1, w1), (h2, w2) = tuple(-(-s // 2) for s in image_shape), feature_grid(image_shape)
        enc += [h1 * w1 * f, h2 * w2 * 2 * f]
        params += 9 * f + f + 9 * f * 2 * f + 2 * f
        enc_in = h2 * w2 * 2 * f
    for a, b in pairwise([enc_in, *hidden, 2 * d]):
        params, enc = params + a * b + b, enc + [b]
    widths = [] if config.decoder == "linear" else list(reversed(hidden))
    if config.decoder != "conv":
        dec = [*widths, num_pixels]
        return enc, dec, params + sum(a * b + b for a, b in pairwise([d, *dec]))
    gh, gw = feature_grid(image_shape)
    dense = [*widths, gh * gw * 2 * f]
    params += sum(a * b + b for a, b in pairwise([d, *dense]))
    params += 9 * 2 * f * 2 * f + 2 * f + 9 * 2 * f * f + f + 9 * f + 1
    return enc, dense + [4 * gh * gw * 2 * f, 16 * gh * gw * f, num_pixels], params


def training_cost(config: Config, num_pixels: int, num_train_images: int, image_shape=None) -> Cost:
    """The estimated cost of training `config` on `num_train_images` images of `num_pixels` pixels (capped by
    config.max_train_images), for config.epochs epochs. Raises ConfigError for a conv network on images it
    cannot take."""
    image_shape = resolve_image_shape(config, num_pixels, image_shape)
    enc, dec, params = _layers(config, num_pixels, image_shape)
    B, S = config.batch_size, config.mc_samples
    n = min(num_train_images, config.max_train_images or num_train_images)
    memory = (BASE_BYTES + BYTES_PER_PARAMETER * params
              + BYTES_PER_ACTIVATION * (B * (sum(enc) + num_pixels) + B * S * sum(dec))
              + max(0, num_train_images - BUNDLED_IMAGES) * num_pixels)
    enc_macs, dec_macs = forward_macs(config, num_pixels, image_shape)
    gflop = 6 * (enc_macs + S * dec_macs) * n * config.epochs / 1e9
    disk = 3 * 4 * params + BYTES_PER_HISTORY_STEP * -(-n // B) * config.epochs
    return Cost(memory / 2**20, gflop, params, disk / 2**20)
