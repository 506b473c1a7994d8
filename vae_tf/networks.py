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


import keras

from .config import Config
from .shapes import MIN_CONV_SIDE, feature_grid, forward_macs, resolve_image_shape, uses_conv, xla_ok  # noqa: F401


def _init(config: Config, i: int):
    return keras.initializers.GlorotUniform(seed=config.seed * 100 + i)


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
    f, (gh, gw), (H, W) = config.conv_filters, feature_grid(image_shape), image_shape
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
