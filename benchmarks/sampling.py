"""Importance sampling: vae_tf's chunked estimator against a one-shot implementation, same draws."""
from __future__ import annotations

import math
import os
import statistics
import time

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_tf.config import Config

from .flops import forward_flops, layer_shapes
from .memory import PeakMemory
from .report import row
from .timing import busy_machine, interleaved_rounds, matmul_chain

tfd = tfp.distributions
BURNERS = os.cpu_count() or 2  # the busy rounds: one CPU-burning process per core beside the benchmark


def one_shot_log_px(model, x, k: int, eps=None, seed: int = 0):
    """All K × N samples at once: decode everything, then one logsumexp. Memory grows as K·N·D.
    eps (K, N, d), if given, are the standard-normal draws to use (z = μ + s·ε). The densities are spelled
    as a textbook would, with TFP's own Bernoulli (vae_tf's one-pass BernoulliLogits is part of what is
    measured), as the training baseline does."""
    q = model.posterior(x)
    z = q.sample(k, seed=tf.constant([seed, 0], tf.int32)) if eps is None else q.bijector.forward(eps)
    if model.config.likelihood == "bernoulli":
        logits = tf.reshape(model.decoder(tf.reshape(z, [-1, model.config.latent_dim])), [k, -1, model.num_pixels])
        likelihood = tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32), reinterpreted_batch_ndims=1)
    else:
        likelihood = model.likelihood(z)
    log_w = likelihood.log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
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
    """The chunked estimator, the one shot and the ceiling (the decoder's matmuls at the estimator's rows a call),
    in turn."""
    from vae_tf.draws import ROWS_PER_CALL, image_noise
    from vae_tf.estimators import estimate_log_px

    _, dec_f = forward_flops(cfg, ds.num_pixels)
    _, dec_shapes = layer_shapes(cfg, ds.num_pixels)
    model, which = bench_model(cfg, ds.num_pixels)
    x_test = ds.test_images("bernoulli")
    k, group = 5000, 10  # the one shot holds K·N·D floats several times over: 157 MB each for a group of 10 images
    n = 20 if quick else 100  # images compared: each round is seconds long on each side, not a blip of noise
    xs = x_test[:n]
    # the estimator's own draws, so that both answers must agree
    eps = np.stack([image_noise(0, i, k, cfg.latent_dim) for i in range(n)], axis=1)
    one_shot_fn = tf.function(lambda x, e: one_shot_log_px(model, x, k, eps=e))

    def one_shot():  # the one shot, a group of images at a time (all 100 at once would need ~8 GB)
        return np.concatenate([one_shot_fn(tf.constant(xs[i:i + group]), tf.constant(eps[:, i:i + group])).numpy()
                               for i in range(0, n, group)])

    with PeakMemory() as m:  # first: memory the one shot frees stays with the allocator and would hide ours
        ours_answer = estimate_log_px(model, xs, k=k, seed=0).log_px
    mem[f"vae_tf IS, K={k}, {n} images"] = m
    with PeakMemory() as m:
        base_answer = one_shot()
    mem[f"one-shot IS, K={k}, groups of {group} images"] = m
    ceiling, ceiling_flops = matmul_chain([(ROWS_PER_CALL, a, b, False, False) for a, b in dec_shapes])
    fns = {"vae_tf": lambda: estimate_log_px(model, xs, k=k, seed=0), "one_shot": one_shot, "ceiling": ceiling}
    work = {"vae_tf": n * k, "one_shot": n * k, "ceiling": ceiling_flops / 1e9}
    quiet = interleaved_rounds(fns, work, repeats)
    with busy_machine(BURNERS):
        busy = interleaved_rounds(fns, work, repeats, warm_up=False)
    ratios = {name: [a / b for a, b in zip(r["vae_tf"], r["one_shot"], strict=True)]
              for name, r in (("quiet", quiet), ("busy", busy))}
    ours, base, ceil = (statistics.median(quiet[name]) for name in ("vae_tf", "one_shot", "ceiling"))
    res.update(ceiling_is_gflops=ceil, is_rate=ours, baseline_is_rate=base, is_ratio=ours / base, is_k=k,
               is_small_images=n, is_pct_ceiling=100 * ours * dec_f / 1e9 / ceil,
               baseline_is_pct_ceiling=100 * base * dec_f / 1e9 / ceil,
               is_round_ratios=ratios["quiet"], is_busy_round_ratios=ratios["busy"],
               is_min_round_ratio=min(ratios["quiet"] + ratios["busy"]),
               is_busy_rate=statistics.median(busy["vae_tf"]),
               baseline_is_busy_rate=statistics.median(busy["one_shot"]),
               is_max_answer_diff=float(np.abs(ours_answer - base_answer).max()))
    print(f"ceiling for importance sampling: the decoder's {len(dec_shapes)} forward matmuls at {ROWS_PER_CALL} rows, "
          f"alone: {ceil:.1f} GFLOP/s")
    print(f"importance sampling, K = {k}, {n} test images{'':<4}{'img·samples/s':>14}{'GFLOP/s':>10}{'% ceiling':>11}")
    print(row("vae_tf estimate_log_px (chunked)", ours, dec_f, ceil))
    print(row(f"baseline (one shot, {group} images a call)", base, dec_f, ceil))
    print(f"  {'ratio':<34}{ours / base:11.2f}×")
    for name, burners in (("quiet", "nothing else running"), ("busy", f"{BURNERS} CPU-burning processes beside it")):
        print(f"  ratio in each round, {name} ({burners}): " + ", ".join(f"{r:.2f}×" for r in ratios[name]))
    print(f"  busy: vae_tf {res['is_busy_rate']:,.0f} against the one shot's {res['baseline_is_busy_rate']:,.0f} "
          f"img·samples/s; the lowest round of all: {res['is_min_round_ratio']:.2f}×")
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
