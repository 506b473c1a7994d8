"""Training: vae_tf's Trainer against a textbook loop, and the same-results check of its fast path."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_tf.config import Config

from . import REPO
from .flops import matmul_flops, step_matmuls
from .memory import PeakMemory
from .report import row
from .timing import interleaved_rates, matmul_chain

tfd = tfp.distributions


def baseline_train_fn(config: Config, x_uint8: np.ndarray, steps: int, first: list | None = None):
    """The textbook loop: tf.data (shuffle, binarize, batch), Keras layers, TFP densities, GradientTape.
    `first`, if given, gets the time.perf_counter() at which the first step (its tracing included) is done."""
    import keras

    d, D = config.latent_dim, x_uint8.shape[1]
    enc = keras.Sequential([keras.Input((D,))] + [keras.layers.Dense(h, "relu") for h in config.hidden]
                           + [keras.layers.Dense(2 * d)])
    dec = keras.Sequential([keras.Input((d,))] + [keras.layers.Dense(h, "relu") for h in reversed(config.hidden)]
                           + [keras.layers.Dense(D)])
    opt = keras.optimizers.Adam(config.learning_rate)
    variables = enc.trainable_variables + dec.trainable_variables
    prior = tfd.MultivariateNormalDiag(tf.zeros(d), tf.ones(d))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            mu, raw = tf.split(enc(x), 2, -1)
            q = tfd.MultivariateNormalDiag(mu, tf.nn.softplus(raw) + 1e-4)
            z = q.sample()
            recon = tfd.Independent(tfd.Bernoulli(logits=dec(z), dtype=tf.float32), 1).log_prob(x)
            loss = -tf.reduce_mean(recon - tfd.kl_divergence(q, prior))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    ds = (tf.data.Dataset.from_tensor_slices(x_uint8).shuffle(len(x_uint8)).repeat()
          .map(lambda x: tf.cast(tf.random.uniform(tf.shape(x)) < tf.cast(x, tf.float32) / 255.0, tf.float32),
               num_parallel_calls=tf.data.AUTOTUNE)
          .batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    it = iter(ds)  # one long-lived iterator: a fresh one per epoch stalls at its end

    def run():
        for i in range(steps):
            loss = step(next(it))
            if i == 0 and first is not None:
                float(loss)
                first.append(time.perf_counter())
        float(loss)
    return run


def vae_tf_train_fn(config: Config, dataset, steps: int):
    """`steps` more steps of one Trainer per call, through its public fit() loop."""
    from vae_tf.train import Trainer

    trainer = Trainer(config.replace(epochs=500), dataset)  # the loop stops long before
    trainer.evaluate_test = lambda *a, **k: (0.0, 0.0, 0.0)  # the epoch-end test ELBO is not training
    target = [0]

    def run():
        target[0] += steps
        trainer.fit(stop=lambda: trainer.steps_done >= target[0])
    return run


def _flat(weights: dict) -> np.ndarray:
    return np.concatenate([v.ravel() for _, v in sorted(weights.items())]).astype(np.float64)


def reference_weights(config: Config, dataset, steps: int,
                      **trainer_kw) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(start weights, weights after `steps` steps, the step losses, steps per call) of one Trainer."""
    from vae_tf.train import Trainer

    t, losses = Trainer(config, dataset, **trainer_kw), []
    start = _flat(t.model.named_weights())
    t.evaluate_test = lambda *a, **k: (0.0, 0.0, 0.0)
    t.fit(on_step=lambda r: losses.append(r.loss), stop=lambda: t.steps_done >= steps)
    return start, _flat(t.model.named_weights()), np.array(losses), t.steps_per_call


def _plain_reference_without_onednn(steps: tuple[int, ...]) -> dict | None:
    """The reference path again in a subprocess with TF_ENABLE_ONEDNN_OPTS=0: the same program, only
    TensorFlow's Eigen matmul kernels instead of oneDNN's — a control for how far pure round-off goes."""
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import sys, numpy as np; from benchmarks.training import reference_weights; "
                "from vae_tf.config import Config; from vae_tf.data import load_fashion_mnist; "
                "ds = load_fashion_mnist(); "
                f"np.savez(sys.argv[1], **{{str(n): reference_weights(Config(), ds, n, steps_per_call=1, "
                f"jit_compile=False)[1] for n in {list(steps)}}})")
        proc = subprocess.run([sys.executable, "-c", code, f"{tmp}/w.npz"], cwd=REPO, capture_output=True, timeout=600,
                              env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"})
        if proc.returncode != 0:
            return None
        with np.load(f"{tmp}/w.npz") as f:
            return {int(k): f[k] for k in f.files}


def same_results(config: Config, dataset, short: int = 5, long: int = 100) -> dict:
    """The Trainer's fast path (XLA, several steps a call) against its plain reference path (no XLA,
    one step a call) from the same seed: same batches, same draws, same float32, so they differ only
    by round-off — ‖w_fast − w_ref‖ / ‖w_ref − w_0‖ after `short` steps shows its size. Over more steps
    a ReLU whose input lies within round-off of 0 can open in one path and not the other, and training
    amplifies that, as it does any other change of summation order: the control is the reference path
    run with other matmul kernels (Eigen instead of oneDNN), nothing else changed."""
    out, refs = {}, {}
    for label, steps, spc in (("short", short, short), ("long", long, None)):
        _, wf, lf, spc_used = reference_weights(config, dataset, steps, steps_per_call=spc)
        steps = len(lf)  # a fast call may overshoot; the reference then does as many steps
        start, wr, lr, _ = reference_weights(config, dataset, steps, steps_per_call=1, jit_compile=False)
        moved = np.linalg.norm(wr - start)
        refs[steps] = (wr, moved)
        out[label] = {"steps": steps, "steps_per_call": spc_used,
                      "relative_weight_diff": float(np.linalg.norm(wf - wr) / moved),
                      "max_weight_diff": float(np.abs(wf - wr).max()),
                      "max_loss_rel_diff": float(np.max(np.abs(lf - lr) / np.abs(lr))),
                      "last_losses": [float(lf[-20:].mean()), float(lr[-20:].mean())]}
    control = _plain_reference_without_onednn(tuple(refs))
    for label in ("short", "long"):
        wr, moved = refs[out[label]["steps"]]
        out[label]["control_relative_diff"] = (float(np.linalg.norm(control[out[label]["steps"]] - wr) / moved)
                                               if control else float("nan"))
    return out


def step_breakdown(cfg: Config, ds, repeats: int, steps: int = 50) -> dict:
    """ms per step of the Trainer's compiled step cut short three ways, on 8 batches, `steps` steps a call
    (XLA, as the Trainer runs it): the loss alone (the forward pass: matmuls, the likelihood over every pixel,
    the KL), + its gradients (the backward pass), + Adam's update (the whole step). Differences name what each
    part costs; the matmuls at the ceiling are what a step cannot go under."""
    import keras

    from vae_tf.model import VAE
    from vae_tf.step import loss

    model = VAE(cfg, ds.num_pixels)
    variables = model.trainable_variables
    opt = keras.optimizers.Adam(cfg.learning_rate)
    opt.build(variables)
    b = cfg.batch_size  # 8 batches taken in turn: one batch every step would be computed once (loop-invariant)
    xs = tf.constant((ds.x_train[:8 * b].reshape(8, b, -1) > 127).astype(np.float32))
    eps = tf.random.normal([8, cfg.mc_samples, b, cfg.latent_dim])

    def part(kind):
        def one(i, acc):
            with tf.GradientTape() as tape:
                value = loss(model, xs[i % 8], eps[i % 8], 1.0)[0]
            if kind == "forward":
                return acc + value
            grads = tape.gradient(value, variables)
            if kind == "gradients":  # every gradient used, so none is left out of the program
                return acc + value + tf.add_n([tf.reduce_sum(g) for g in grads]) * 0.0
            opt.apply_gradients(zip(grads, variables, strict=True))
            return acc + value

        @tf.function(jit_compile=True)
        def call():
            acc = tf.constant(0.0)
            for i in tf.range(steps):
                acc = one(i, acc)
            return acc
        return lambda: call().numpy()

    fns = {kind: part(kind) for kind in ("forward", "gradients", "step")}
    rates = interleaved_rates(fns, {kind: steps for kind in fns}, repeats)
    return {kind: 1000 / r for kind, r in rates.items()}  # ms per step


def run_training(cfg: Config, ds, steps: int, check_steps: int, repeats: int, res: dict, mem: dict):
    """The Trainer, the baseline and the ceiling (the step's matmuls alone), timed in turn."""
    step_mm = step_matmuls(cfg, ds.num_pixels)
    train_flops = matmul_flops(step_mm) / cfg.batch_size
    x_train = ds.x_train.reshape(len(ds.x_train), -1)
    ceiling, ceiling_flops = matmul_chain(step_mm)
    with PeakMemory() as m:
        rates = interleaved_rates({"vae_tf": vae_tf_train_fn(cfg, ds, steps),
                                   "baseline": baseline_train_fn(cfg, x_train, steps), "ceiling": ceiling},
                                  {"vae_tf": steps * cfg.batch_size, "baseline": steps * cfg.batch_size,
                                   "ceiling": ceiling_flops / 1e9}, repeats)
    mem["training, both loops"] = m
    ours, base, ceil = rates["vae_tf"], rates["baseline"], rates["ceiling"]
    res.update(ceiling_train_gflops=ceil, train_ips=ours, baseline_train_ips=base, train_ratio=ours / base,
               train_pct_ceiling=100 * ours * train_flops / 1e9 / ceil,
               baseline_train_pct_ceiling=100 * base * train_flops / 1e9 / ceil)
    print(f"ceiling for training: the {len(step_mm)} matmuls of one training step at batch {cfg.batch_size}, alone: "
          f"{ceil:.1f} GFLOP/s")
    print(f"training, default config, {steps} steps a round{'':<4}{'images/s':>12}{'GFLOP/s':>10}{'% ceiling':>11}")
    print(row("vae_tf Trainer.fit", ours, train_flops, ceil))
    print(row("baseline (tf.data + tf.function)", base, train_flops, ceil))
    print(f"  {'ratio':<34}{ours / base:11.2f}×")
    ms = res["train_step_ms"] = step_breakdown(cfg, ds, repeats)
    matmul_ms = 1000 * matmul_flops(step_mm) / 1e9 / ceil
    res["train_step_matmul_ms"] = matmul_ms
    parts = {"forward": ms["forward"], "gradients": ms["gradients"] - ms["forward"],
             "Adam's update": ms["step"] - ms["gradients"]}
    print("  where a step's time goes (its compiled program cut short, ms a step): "
          + ", ".join(f"{k} {v:.2f} ({100 * v / ms['step']:.0f}%)" for k, v in parts.items())
          + f"; together {ms['step']:.2f}.\n    Its matmuls alone at the ceiling take {matmul_ms:.2f} ms; the "
          f"Trainer's whole step (its draws and batches too) took {1000 * cfg.batch_size / ours:.2f} ms")
    c = res["same_results"] = same_results(cfg, ds, long=check_steps)
    sh, lo = c["short"], c["long"]
    print(f"  same results, seed {cfg.seed}: fast path (XLA, several steps a call) vs reference path (no XLA, "
          "one step a")
    print("    call): same batches, draws and precision. Weight difference as a share of how far training moved them:")
    print(f"    after {sh['steps']:>3} steps: {sh['relative_weight_diff']:.1e} (largest {sh['max_weight_diff']:.1e}); "
          f"control, the reference path with Eigen instead of oneDNN kernels: {sh['control_relative_diff']:.1e}")
    print(f"    after {lo['steps']:>3} steps: {lo['relative_weight_diff']:.1e} (largest {lo['max_weight_diff']:.1e}); "
          f"control: {lo['control_relative_diff']:.1e} — round-off, grown by training (a ReLU")
    print(f"    input within round-off of 0 opens in one run only); step losses differ by ≤ "
          f"{lo['max_loss_rel_diff']:.1e} relative; mean loss of the last 20 steps {lo['last_losses'][0]:.3f} vs "
          f"{lo['last_losses'][1]:.3f}\n")
