"""Importance sampling: vae_tf's chunked estimator against a one-shot implementation, same draws."""
from __future__ import annotations

import math
import time

import numpy as np
import tensorflow as tf

from vae_tf.config import Config

from .flops import forward_flops, layer_shapes
from .memory import PeakMemory
from .report import row
from .timing import interleaved_rates, matmul_chain


def one_shot_log_px(model, x, k: int, eps=None, seed: int = 0):
    """All K × N samples at once: decode everything, then one logsumexp. Memory grows as K·N·D.
    eps (K, N, d), if given, are the standard-normal draws to use (z = μ + s·ε)."""
    q = model.posterior(x)
    z = q.sample(k, seed=tf.constant([seed, 0], tf.int32)) if eps is None else q.bijector.forward(eps)
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, 0) - math.log(k)


def bench_model(config: Config, num_pixels: int):
    """The shipped default run if it is there (a trained model), else a fresh one: the FLOPs are the same."""
    from vae_tf.model import VAE
    from vae_tf.runs import load_run, run_dir

    try:
        run = load_run(run_dir("fashion-default"))
        if run.config.replace(epochs=config.epochs) == config:
            return run.model, "shipped fashion-default run"
    except Exception:  # any unreadable run: benchmark an untrained model instead
        pass
    return VAE(config, num_pixels), "untrained default model"


def run_importance_sampling(cfg: Config, ds, quick: bool, repeats: int, res: dict, mem: dict):
    """The chunked estimator, the one shot and the ceiling (the decoder's matmuls at 8192 rows), in turn."""
    from vae_tf.draws import image_noise
    from vae_tf.estimators import estimate_log_px

    _, dec_f = forward_flops(cfg, ds.num_pixels)
    _, dec_shapes = layer_shapes(cfg, ds.num_pixels)
    model, which = bench_model(cfg, ds.num_pixels)
    x_test = ds.test_images("bernoulli")
    k = 5000
    n = 4 if quick else 10  # the one shot holds K·N·D floats several times over: 157 MB each at 10 images
    xs = x_test[:n]
    # the estimator's own draws, so that both answers must agree
    eps = tf.constant(np.stack([image_noise(0, i, k, cfg.latent_dim) for i in range(n)], axis=1))
    one_shot = tf.function(lambda x, e: one_shot_log_px(model, x, k, eps=e))
    with PeakMemory() as m:  # first: memory the one shot frees stays with the allocator and would hide ours
        ours_answer = estimate_log_px(model, xs, k=k, seed=0).log_px
    mem[f"vae_tf IS, K={k}, {n} images"] = m
    with PeakMemory() as m:
        base_answer = one_shot(tf.constant(xs), eps).numpy()
    mem[f"one-shot IS, K={k}, {n} images"] = m
    ceiling, ceiling_flops = matmul_chain([(8192, a, b, False, False) for a, b in dec_shapes])
    rates = interleaved_rates({"vae_tf": lambda: estimate_log_px(model, xs, k=k, seed=0),
                               "one_shot": lambda: one_shot(tf.constant(xs), eps).numpy(), "ceiling": ceiling},
                              {"vae_tf": n * k, "one_shot": n * k, "ceiling": ceiling_flops / 1e9}, repeats)
    ours, base, ceil = rates["vae_tf"], rates["one_shot"], rates["ceiling"]
    res.update(ceiling_is_gflops=ceil, is_rate=ours, baseline_is_rate=base, is_ratio=ours / base, is_k=k,
               is_small_images=n, is_pct_ceiling=100 * ours * dec_f / 1e9 / ceil,
               baseline_is_pct_ceiling=100 * base * dec_f / 1e9 / ceil,
               is_max_answer_diff=float(np.abs(ours_answer - base_answer).max()))
    print(f"ceiling for importance sampling: the decoder's {len(dec_shapes)} forward matmuls at 8192 rows, alone: "
          f"{ceil:.1f} GFLOP/s")
    print(f"importance sampling, K = {k}, {n} test images{'':<5}{'img·samples/s':>14}{'GFLOP/s':>10}{'% ceiling':>11}")
    print(row("vae_tf estimate_log_px (chunked)", ours, dec_f, ceil))
    print(row("baseline (one shot)", base, dec_f, ceil))
    print(f"  {'ratio':<34}{ours / base:11.2f}×")
    print(f"  model: {which}; same draws on both sides, and log p̂(x) agrees to {res['is_max_answer_diff']:.1e} nats")
    n_img, k_full = (100, 1000) if quick else (1000, 5000)
    with PeakMemory() as m:
        t = time.perf_counter()
        estimate_log_px(model, x_test[:n_img], k=k_full)
        res.update(is_full_seconds=time.perf_counter() - t, is_full_images=n_img, is_full_k=k_full)
    mem[f"vae_tf IS, K={k_full}, {n_img} images"] = m
    res["is_full_rate"] = n_img * k_full / res["is_full_seconds"]
    print(f"  K = {k_full} on {n_img} test images with vae_tf: {res['is_full_seconds']:.1f} s "
          f"({res['is_full_rate']:,.0f} img·samples/s, {100 * res['is_full_rate'] * dec_f / 1e9 / ceil:.0f}% of the "
          f"ceiling; peak memory {m})\n")
