"""The encoder and decoder networks, Keras 3 Sequential models: MLP, affine, or convolutional.

Every network takes and gives flat rows of pixels (N, H·W), so the rest of the library never sees the
image shape; a conv network reshapes to (H, W, 1) inside. The conv stacks follow the Keras VAE example
(3×3 kernels, stride 2, f then 2f filters), mirrored by transposed convolutions in the decoder:

    encoder  x → (H, W, 1) → Conv f, /2 → Conv 2f, /2 → flatten → Dense hidden… → Dense 2d (μ, raw s)
    decoder  z → Dense reversed(hidden)… → Dense h·w·2f → (h, w, 2f) → ConvT 2f, ×2 → ConvT f, ×2
             → ConvT 1 (logits or means) → crop to (H, W) → flatten

with h = ⌈H/4⌉, w = ⌈W/4⌉: a stride-2 'same' convolution halves a side rounding up and a transposed one
doubles it, so 4h ≥ H and at most 3 extra rows (columns) are cropped. Any side from MIN_CONV_SIDE up
works, odd ones included. The output layers are always named enc_out and dec_out (runs.py relies on it).
"""
from __future__ import annotations

import math
from itertools import pairwise

import keras

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


def _init(config: Config, i: int):
    return keras.initializers.GlorotUniform(seed=config.seed * 100 + i)


def _grid(image_shape) -> tuple[int, int]:
    """The decoder's first feature map, ⌈H/4⌉ × ⌈W/4⌉: two stride-2 layers each halve a side, rounding up."""
    return tuple(-(-s // 4) for s in image_shape)


def build_encoder(config: Config, num_pixels: int, image_shape) -> keras.Sequential:
    """x (N, H·W) → (N, 2d): μ and the raw (pre-softplus) standard deviations of q(z|x)."""
    d, f = config.latent_dim, config.conv_filters
    layers = [keras.Input((num_pixels,))]
    if config.encoder == "conv":
        layers += [keras.layers.Reshape((*image_shape, 1))]
        layers += [keras.layers.Conv2D(n, 3, strides=2, padding="same", activation="relu",
                                       kernel_initializer=_init(config, 40 + i), name=f"enc_conv_{i}")
                   for i, n in enumerate((f, 2 * f))]
        layers += [keras.layers.Flatten()]
    layers += [keras.layers.Dense(h, "relu", kernel_initializer=_init(config, i), name=f"enc_{i}")
               for i, h in enumerate(config.hidden)]
    layers += [keras.layers.Dense(2 * d, kernel_initializer=_init(config, 10), name="enc_out")]
    return keras.Sequential(layers, name="encoder")


def build_decoder(config: Config, num_pixels: int, image_shape) -> keras.Sequential:
    """z (N, d) → (N, H·W): the Bernoulli logits or the Gaussian means of every pixel."""
    widths = [] if config.decoder == "linear" else list(reversed(config.hidden))
    layers = [keras.Input((config.latent_dim,))]
    layers += [keras.layers.Dense(h, "relu", kernel_initializer=_init(config, 20 + i), name=f"dec_{i}")
               for i, h in enumerate(widths)]
    if config.decoder != "conv":
        layers += [keras.layers.Dense(num_pixels, kernel_initializer=_init(config, 30), name="dec_out")]
        return keras.Sequential(layers, name="decoder")
    f, (gh, gw), (H, W) = config.conv_filters, _grid(image_shape), image_shape
    layers += [keras.layers.Dense(gh * gw * 2 * f, "relu", kernel_initializer=_init(config, 50), name="dec_grid"),
               keras.layers.Reshape((gh, gw, 2 * f))]
    layers += [keras.layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu",
                                            kernel_initializer=_init(config, 51 + i), name=f"dec_conv_{i}")
               for i, n in enumerate((2 * f, f))]
    layers += [keras.layers.Conv2DTranspose(1, 3, padding="same", kernel_initializer=_init(config, 30),
                                            name="dec_out"),
               keras.layers.Cropping2D(((0, 4 * gh - H), (0, 4 * gw - W))),
               keras.layers.Flatten()]
    return keras.Sequential(layers, name="decoder")


def forward_macs(config: Config, num_pixels: int, image_shape=None) -> tuple[int, int]:
    """Multiply-adds of one image through the encoder and of one code through the decoder (the step's
    size, for choosing steps per call). A stride-2 conv costs out_pixels·out_ch·in_ch·9; a stride-2
    transposed conv scatters each input pixel through its 3×3 kernel: in_pixels·in_ch·out_ch·9."""
    image_shape = resolve_image_shape(config, num_pixels, image_shape)
    d, f = config.latent_dim, config.conv_filters
    enc_in, enc = num_pixels, 0
    if config.encoder == "conv":
        (h1, w1), (h2, w2) = (tuple(-(-s // 2) for s in image_shape), _grid(image_shape))
        enc = h1 * w1 * f * 9 + h2 * w2 * 2 * f * f * 9
        enc_in = h2 * w2 * 2 * f
    enc += sum(a * b for a, b in pairwise([enc_in, *config.hidden, 2 * d]))
    widths = [] if config.decoder == "linear" else list(reversed(config.hidden))
    if config.decoder != "conv":
        return enc, sum(a * b for a, b in pairwise([d, *widths, num_pixels]))
    gh, gw = _grid(image_shape)
    dense = sum(a * b for a, b in pairwise([d, *widths, gh * gw * 2 * f]))
    conv = gh * gw * (2 * f) ** 2 * 9 + 4 * gh * gw * 2 * f * f * 9 + 16 * gh * gw * f * 9
    return enc, dense + conv
