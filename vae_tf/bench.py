"""Benchmark: vae_tf against straightforward baselines, side by side in one process.

    python -m vae_tf bench [--repeats 3] [--quick] [--skip-app]

Prints the machine's matmul ceiling at the model's shapes, training images/s of
vae_tf's Trainer and of a plain baseline (tf.data + GradientTape + @tf.function,
same architecture, batch, optimizer and likelihood), importance-sampling
throughput against a one-shot baseline, and the app's cold start and memory.
Every figure is the median of several repeats; ratios compare runs made in the
same process, so a busy machine slows both sides alike.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .config import Config
from .data import load_fashion_mnist

tfd = tfp.distributions


# -- FLOP counting ---------------------------------------------------------------------
def layer_shapes(config: Config, num_pixels: int) -> tuple[list, list]:
    """(fan_in, fan_out) of every dense layer of the encoder and of the decoder."""
    enc = [num_pixels, *config.hidden, 2 * config.latent_dim]
    dec = [config.latent_dim, *([] if config.decoder == "linear" else reversed(config.hidden)), num_pixels]
    pairs = lambda w: list(zip(w[:-1], w[1:]))  # noqa: E731
    return pairs(enc), pairs(dec)


def forward_flops(config: Config, num_pixels: int) -> tuple[int, int]:
    """FLOPs of one image through the encoder and through the decoder: 2 per multiply-add."""
    enc, dec = layer_shapes(config, num_pixels)
    return sum(2 * a * b for a, b in enc), sum(2 * a * b for a, b in dec)


# -- timing helpers ----------------------------------------------------------------------
def median_rate(fn, work: float, repeats: int) -> float:
    """work / seconds, median over repeats (fn is warmed up once first)."""
    fn()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(work / (time.perf_counter() - t))
    return statistics.median(rates)


def matmul_ceiling(shapes: list[tuple[int, int]], rows: int, repeats: int, iters: int = 50) -> float:
    """Sustained float32 GFLOP/s of a chain of matmuls (rows × a) @ (a × b) at the given shapes."""
    xs = [tf.random.normal([rows, a]) for a, _ in shapes]
    ws = [tf.random.normal([a, b]) for a, b in shapes]

    @tf.function
    def chain():
        acc = tf.constant(0.0)
        for _ in tf.range(iters):
            for x, w in zip(xs, ws):
                acc += tf.reduce_sum(tf.matmul(x, w)[:1, :1])  # keep each product alive, read one number
        return acc

    flops = iters * sum(2 * rows * a * b for a, b in shapes)
    return median_rate(lambda: chain().numpy(), flops, repeats) / 1e9


# -- training: vae_tf against a straightforward baseline -----------------------------------
def baseline_train_fn(config: Config, x_uint8: np.ndarray, steps: int):
    """The textbook loop: tf.data (shuffle, binarize, batch), Keras layers, TFP densities, GradientTape."""
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
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    ds = (tf.data.Dataset.from_tensor_slices(x_uint8).shuffle(len(x_uint8)).repeat()
          .map(lambda x: tf.cast(tf.random.uniform(tf.shape(x)) < tf.cast(x, tf.float32) / 255.0, tf.float32),
               num_parallel_calls=tf.data.AUTOTUNE)
          .batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    it = iter(ds)  # one long-lived iterator: a fresh one per epoch can stall at teardown

    def run():
        for _ in range(steps):
            loss = step(next(it))
        float(loss)
    return run


def vae_tf_train_fn(config: Config, dataset, steps: int):
    from .train import Trainer

    cfg = config.replace(epochs=500)  # far beyond what is timed: the loop stops after `steps` steps
    trainer = Trainer(cfg, dataset)
    target = [0]

    def run():
        target[0] += steps
        trainer.fit(stop=lambda: trainer.steps_done >= target[0])
    trainer.evaluate_test = lambda *a, **k: (0.0, 0.0, 0.0)  # an epoch end never comes; keep it free anyway
    return run


# -- importance sampling: vae_tf against a one-shot baseline ---------------------------------
def one_shot_log_px(model, x, k: int, seed: int = 0):
    """All K × N samples at once: decode everything, then one logsumexp. Memory grows as K·N·D."""
    q = model.posterior(x)
    z = q.sample(k, seed=tf.constant([seed, 0], tf.int32))
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, 0) - math.log(k)


# -- the app -------------------------------------------------------------------------------
def app_cold_start(repo: Path, timeout: float = 120) -> dict:
    """Seconds from `streamlit run app.py` to the first page rendered in headless Chromium, and
    the server's peak memory after that page (psutil-free: /proc/PID/status VmHWM)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"error": "playwright not installed (pip install -r requirements-test.txt)"}
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            page = browser.new_page()
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                    break
                except Exception:
                    if time.perf_counter() - t0 > timeout:
                        raise
                    time.sleep(0.2)
            page.wait_for_selector(".js-plotly-plot", timeout=timeout * 1000)
            first = time.perf_counter() - t0
            peak = _vm_hwm_mb(proc.pid)
            browser.close()
        return {"cold_start_s": first, "server_peak_mb_first_page": peak}
    finally:
        proc.terminate()
        proc.wait(10)


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- main ----------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vae_tf bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer steps and images (a smoke run)")
    ap.add_argument("--skip-app", action="store_true", help="skip the app's cold start")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = ap.parse_args(argv)
    from .estimators import estimate_log_px
    from .model import VAE

    cfg = Config()
    ds = load_fashion_mnist()
    D = ds.num_pixels
    enc_f, dec_f = forward_flops(cfg, D)
    res, mem = {}, {"start": peak_rss_mb()}
    print(f"machine: {os.cpu_count()} cores, TensorFlow {tf.__version__}, intra-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
    print(f"default model: {cfg.hidden} hidden, latent {cfg.latent_dim}, batch {cfg.batch_size}; forward "
          f"{(enc_f + dec_f) / 1e6:.2f} MFLOP/image (encoder {enc_f / 1e6:.2f}, decoder {dec_f / 1e6:.2f})\n")

    enc_shapes, dec_shapes = layer_shapes(cfg, D)
    res["ceiling_train_gflops"] = matmul_ceiling(enc_shapes + dec_shapes, cfg.batch_size, args.repeats)
    res["ceiling_is_gflops"] = matmul_ceiling(dec_shapes, 8192, args.repeats, iters=5)
    print(f"matmul ceiling at the training shapes (rows={cfg.batch_size}): {res['ceiling_train_gflops']:8.1f} GFLOP/s")
    print(f"matmul ceiling at the decoder shapes (rows=8192):        {res['ceiling_is_gflops']:8.1f} GFLOP/s\n")

    steps = 50 if args.quick else 300
    x_train = ds.x_train.reshape(len(ds.x_train), -1)
    train_flops = 3 * (enc_f + dec_f)  # forward + backward ≈ 3 × forward
    ours = median_rate(vae_tf_train_fn(cfg, ds, steps), steps * cfg.batch_size, args.repeats)
    base = median_rate(baseline_train_fn(cfg, x_train, steps), steps * cfg.batch_size, args.repeats)
    mem["train"] = peak_rss_mb()
    res.update(train_ips=ours, baseline_train_ips=base, train_ratio=ours / base,
               train_pct_ceiling=100 * ours * train_flops / 1e9 / res["ceiling_train_gflops"],
               baseline_train_pct_ceiling=100 * base * train_flops / 1e9 / res["ceiling_train_gflops"])
    print(f"{'training':<26}{'images/s':>12}{'GFLOP/s':>10}{'% ceiling':>11}")
    print(f"{'  vae_tf Trainer':<26}{ours:12.0f}{ours * train_flops / 1e9:10.1f}{res['train_pct_ceiling']:10.0f}%")
    print(f"{'  baseline (tf.data loop)':<26}{base:12.0f}{base * train_flops / 1e9:10.1f}{res['baseline_train_pct_ceiling']:10.0f}%")
    print(f"{'  ratio':<26}{ours / base:11.2f}×\n")

    model = VAE(cfg, D)
    x_test = ds.test_images("bernoulli")
    k, n_img = (1000, 100) if args.quick else (5000, 1000)
    is_flops = dec_f  # per image·sample; the encoder runs once per image
    t = time.perf_counter()
    estimate_log_px(model, x_test[:n_img], k=k)
    full_s = time.perf_counter() - t
    mem["is_full"] = peak_rss_mb()
    n_small = 20 if not args.quick else 10
    xs = tf.constant(x_test[:n_small])
    one_shot = tf.function(lambda x: one_shot_log_px(model, x, k))
    ours_is = median_rate(lambda: estimate_log_px(model, x_test[:n_small], k=k), n_small * k, args.repeats)
    base_is = median_rate(lambda: one_shot(xs).numpy(), n_small * k, args.repeats)
    mem["is_one_shot"] = peak_rss_mb()
    res.update(is_full_seconds=full_s, is_full_images=n_img, is_k=k, is_rate=ours_is, baseline_is_rate=base_is,
               is_ratio=ours_is / base_is, is_pct_ceiling=100 * ours_is * is_flops / 1e9 / res["ceiling_is_gflops"],
               baseline_is_pct_ceiling=100 * base_is * is_flops / 1e9 / res["ceiling_is_gflops"])
    print(f"{'importance sampling':<26}{'img·samples/s':>14}{'GFLOP/s':>10}{'% ceiling':>11}")
    print(f"{'  vae_tf (chunked)':<26}{ours_is:14.0f}{ours_is * is_flops / 1e9:10.1f}{res['is_pct_ceiling']:10.0f}%")
    print(f"{'  baseline (one shot)':<26}{base_is:14.0f}{base_is * is_flops / 1e9:10.1f}{res['baseline_is_pct_ceiling']:10.0f}%")
    print(f"{'  ratio':<26}{ours_is / base_is:13.2f}×   (K = {k}, {n_small} images, as much as one shot holds)")
    print(f"  K = {k} on {n_img} test images with vae_tf: {full_s:.1f} s\n")

    if not args.skip_app:
        app = app_cold_start(Path(__file__).resolve().parent.parent)
        res.update({f"app_{k_}": v for k_, v in app.items()})
        if "error" in app:
            print(f"app cold start: skipped ({app['error']})")
        else:
            print(f"app cold start to first rendered page: {app['cold_start_s']:.1f} s; "
                  f"server peak memory {app['server_peak_mb_first_page']:.0f} MB")
    print("peak memory of this process (MB): " + ", ".join(f"{k_} {v:.0f}" for k_, v in mem.items()))
    res["peak_mb"] = mem
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
