"""Counting FLOPs: the dense layers of a config, the forward pass, and every matmul of a training step."""
from __future__ import annotations

from itertools import pairwise

from vae_tf.config import Config


def layer_shapes(config: Config, num_pixels: int) -> tuple[list, list]:
    """(fan_in, fan_out) of every dense layer of the encoder and of the decoder."""
    enc = [num_pixels, *config.hidden, 2 * config.latent_dim]
    dec = [config.latent_dim, *([] if config.decoder == "linear" else reversed(config.hidden)), num_pixels]
    return list(pairwise(enc)), list(pairwise(dec))


def forward_flops(config: Config, num_pixels: int) -> tuple[int, int]:
    """FLOPs of one image through the encoder and through the decoder: 2 per multiply-add."""
    enc, dec = layer_shapes(config, num_pixels)
    return sum(2 * a * b for a, b in enc), sum(2 * a * b for a, b in dec)


def step_matmuls(config: Config, num_pixels: int) -> list[tuple[int, int, int, bool, bool]]:
    """(m, k, n, transpose_a, transpose_b) of every matmul of one training step, as the gradient
    tape runs them: forward X·W (rows × a)(a × b), weight gradient Xᵀ·dY (a × rows)(rows × b), input
    gradient dY·Wᵀ (rows × b)(b × a) — except into the pixels, which need none. The decoder sees
    mc_samples rows per image."""
    enc, dec = layer_shapes(config, num_pixels)
    B, S = config.batch_size, config.mc_samples
    out = []
    for i, (a, b) in enumerate(enc + dec):
        rows = B if i < len(enc) else B * S
        out += [(rows, a, b, False, False), (a, rows, b, True, False)]
        if i > 0:
            out.append((rows, b, a, False, True))
    return out


def matmul_flops(matmuls) -> int:
    return sum(2 * m * k * n for m, k, n, _, _ in matmuls)
