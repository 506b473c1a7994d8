"""The networks' shapes and sizes, without Keras: which images a conv stack takes, its feature maps, the
multiply-adds of one image through each network (vae_tf.networks builds them; vae_tf.budget prices them)."""
from __future__ import annotations

import math
from itertools import pairwise

from .config import Config, ConfigError

MIN_CONV_SIDE = 8  # two halvings of a side under 8 leave less than 2 × 2 feature maps


def uses_conv(config: Config) -> bool:
    return config.encoder == "conv" or config.decoder == "conv"


def xla_ok(config: Config) -> bool:
    """Whether this model's compiled calls should use XLA. Not with a conv network: XLA's CPU backend runs
    convolutions and their gradients far slower than TensorFlow's own (oneDNN) kernels."""
    return not uses_conv(config)


def resolve_image_shape(config: Config, num_pixels: int, image_shape=None) -> tuple[int, int] | None:
    """(H, W) as given, checked against num_pixels; for a conv network without one, the square side if
    num_pixels is a square. Refuses (ConfigError) images a conv stack cannot take."""
    if image_shape is None:
        if not uses_conv(config):
            return None
        side = math.isqrt(num_pixels)
        if side * side != num_pixels:
            raise ConfigError(f"a conv encoder or decoder needs the image shape: {num_pixels} pixels is not a "
                              "square image (pass image_shape=(H, W))")
        image_shape = (side, side)
    h, w = (int(s) for s in image_shape)
    if h * w != num_pixels:
        raise ValueError(f"image shape {h}×{w} does not hold {num_pixels} pixels")
    if uses_conv(config) and min(h, w) < MIN_CONV_SIDE:
        raise ConfigError(f"a conv encoder or decoder needs images of at least {MIN_CONV_SIDE}×{MIN_CONV_SIDE} "
                          f"pixels (its two stride-2 convolutions quarter each side); these are {h}×{w}. "
                          "Use the mlp encoder and decoder for such small images")
    return h, w

def feature_grid(image_shape) -> tuple[int, int]:
    """The decoder's first feature map, ⌈H/4⌉ × ⌈W/4⌉: two stride-2 layers each halve a side, rounding up."""
    return tuple(-(-s // 4) for s in image_shape)

def forward_macs(config: Config, num_pixels: int, image_shape=None) -> tuple[int, int]:
    """Multiply-adds of one image through the encoder and of one code through the decoder (the step's
    size, for choosing steps per call). A stride-2 conv costs out_pixels·out_ch·in_ch·9; a stride-2
    transposed conv scatters each input pixel through its 3×3 kernel: in_pixels·in_ch·out_ch·9."""
    image_shape = resolve_image_shape(config, num_pixels, image_shape)
    d, f = config.latent_dim, config.conv_filters
    enc_in, enc = num_pixels, 0
    if config.encoder == "conv":
        (h1, w1), (h2, w2) = (tuple(-(-s // 2) for s in image_shape), feature_grid(image_shape))
        enc = h1 * w1 * f * 9 + h2 * w2 * 2 * f * f * 9
        enc_in = h2 * w2 * 2 * f
    enc += sum(a * b for a, b in pairwise([enc_in, *config.hidden, 2 * d]))
    widths = [] if config.decoder == "linear" else list(reversed(config.hidden))
    if config.decoder != "conv":
        return enc, sum(a * b for a, b in pairwise([d, *widths, num_pixels]))
    gh, gw = feature_grid(image_shape)
    dense = sum(a * b for a, b in pairwise([d, *widths, gh * gw * 2 * f]))
    conv = gh * gw * (2 * f) ** 2 * 9 + 4 * gh * gw * 2 * f * f * 9 + 16 * gh * gw * f * 9
    return enc, dense + conv
