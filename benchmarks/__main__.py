"""Benchmark: vae_tf against straightforward baselines, side by side in one process.

    python -m benchmarks [--repeats 5] [--quick] [--skip-app] [--skip-bounds] [--skip-end-to-end] [--skip-distributed]
    [--skip-load] [--json]
    (or: python -m vae_tf bench)

1. The ceiling: sustained float32 GFLOP/s of TensorFlow's own matmul kernels on exactly the
   matmuls of one default training step at batch 128 (every layer's forward product, its weight
   gradient Xᵀ·dY and its input gradient dY·Wᵀ — none for the pixels), and of the decoder's
   forward matmuls at the estimator's rows a call (draws.ROWS_PER_CALL); each timed in turn with what it is the
   ceiling of.
2. Training images/s of vae_tf's Trainer at the default config, and of a textbook loop beside it
   (tf.data, Keras layers, TFP, GradientTape, @tf.function; same architecture, batch, optimizer,
   likelihood), each as a % of the ceiling: images/s × the step's matmul FLOPs per image ÷ ceiling,
   i.e. the share of the step's time that the matmuls alone would take at the ceiling (the Trainer's
   epoch-end test ELBO, ~0.1 s an epoch, is left out: the baseline has none). Then the
   same-results check: the Trainer's fast path against its plain reference path, same seed, beside
   a control (the reference path with other matmul kernels) that shows how far round-off alone goes.
3. Importance sampling image·samples/s at K = 5000: vae_tf's chunked estimator against a one-shot
   implementation (decode all K × N draws of 10 images at once, TFP's own Bernoulli) on 100 test images,
   with the same draws so that the answers must agree; rounds on a quiet machine, then rounds beside one
   CPU-burning process per core (a busy machine), each round's ratio printed; then K = 5000 on 1000 images.
4. Error bars: log p̂_K's reported standard error against its spread over 16 seeds, on the shipped
   default run's first 20 test images at K = 2000, beside the delta method's (calibration.py).
2b. End to end (end_to_end.py): a fresh `vae_tf` training process against the textbook script's, on the
   same work, whole process, with where the time goes (start-up, first compiled call, steps, evaluation,
   writes); and the same training as the app's Train click runs it, on the spare worker the Train page keeps
   ready: click → first progress, first steps, run saved.
5. The app: seconds from `streamlit run app.py` to the first page rendered with the shipped run,
   then switching between pages once warm, and the server's peak memory.
6. How tight is the bound (bounds.py): AIS at its defaults on the shipped default run's first 100 test
   images (seconds, leapfrog gradient evaluations/s and % of their matmuls' ceiling), the BDMC sandwich
   at the same settings, and the per-image q* optimisation of the same images.
6b. Past one machine (distributed.py): the default training in one process and in a two-process
   MultiWorkerMirrored cluster on localhost, images/s side by side.
7. Under load (load.py): a fresh server in a 2.7 GB memory cgroup, as Cloud runs one, with 1, then 6
   visitors and a training, then 8 visitors, a training and two estimates, a refused maximal training and a
   131 MB upload (headless Chromiums on the same cores): page renders p50/p95, the first opens, the
   cgroup's memory peak, whether the server lived; before them, the smallest Streamlit app's first opens at 1
   and 6 visitors in the same harness (floor.py), the framework's own ratio. Alone: python -m benchmarks.load.

Every rate is the median of several repeats; the two sides of a comparison are timed in turn
(A, B, A, B, …) in the same process, so a busy machine slows both alike. Peak memory is per stage
(the process's high-water mark is reset before each: /proc/self/clear_refs).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import tensorflow as tf

from vae_tf.config import Config
from vae_tf.data import load_fashion_mnist

from .app import run_app
from .bounds import run_bounds, target_lines
from .calibration import TARGET_COVER, TARGET_RATIO, run_calibration
from .end_to_end import TARGET_FIRST_PROGRESS_S, run_end_to_end
from .end_to_end import TARGET_RATIO as E2E_TARGET
from .distributed import run_distributed
from .load import run_load
from .load import target_lines as load_targets
from .flops import forward_flops, matmul_flops, step_matmuls
from .report import met
from .sampling import run_importance_sampling
from .training import run_training

TARGETS = {"train_ratio": 2.5, "train_pct_ceiling": 70.0, "is_ratio": 1.25, "app_cold_start_s": 4.0,
           "app_switch_s": 0.5, "app_first_visit_s": 2.5, "app_memory_mb": 1200.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds per comparison (the median is shown)")
    ap.add_argument("--quick", action="store_true", help="fewer steps and images (a smoke run)")
    ap.add_argument("--skip-app", action="store_true", help="skip the app's cold start and page switches")
    ap.add_argument("--skip-bounds", action="store_true", help="skip AIS, BDMC and q* (bounds.py; ~5 minutes)")
    ap.add_argument("--skip-end-to-end", action="store_true", help="skip the whole-process trainings (~2 minutes)")
    ap.add_argument("--skip-distributed", action="store_true", help="skip one process against a two-process "
                    "MultiWorkerMirrored cluster (distributed.py; ~2 minutes)")
    ap.add_argument("--skip-load", action="store_true", help="skip 1, 6 and 8 visitors under a memory cap (load.py; "
                    "~15 minutes)")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = ap.parse_args(argv)

    t_bench = time.perf_counter()
    cfg, ds = Config(), load_fashion_mnist()
    enc_f, dec_f = forward_flops(cfg, ds.num_pixels)
    train_flops = matmul_flops(step_matmuls(cfg, ds.num_pixels)) / cfg.batch_size
    res, mem = {}, {}
    print(f"machine: {os.cpu_count()} cores; TensorFlow {tf.__version__}; threads intra-op "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, inter-op "
          f"{tf.config.threading.get_inter_op_parallelism_threads() or 'default'}")
    print(f"default model: hidden {cfg.hidden}, latent {cfg.latent_dim}, batch {cfg.batch_size}, Adam, Bernoulli")
    print(f"FLOPs per image: forward {(enc_f + dec_f) / 1e6:.2f} M (encoder {enc_f / 1e6:.2f}, decoder "
          f"{dec_f / 1e6:.2f}); training step {train_flops / 1e6:.2f} M = forward + weight gradients + input "
          f"gradients except into the pixels (3 × forward would be {3 * (enc_f + dec_f) / 1e6:.2f} M); one "
          f"importance sample {dec_f / 1e6:.2f} M (the decoder)")
    print("ceiling: sustained float32 GFLOP/s of TensorFlow's own matmul kernels (oneDNN) on exactly the matmuls "
          "of the work\nmeasured, timed in turn with it; % ceiling = the share of the time the matmuls alone would "
          f"take. Medians of {args.repeats} rounds.\n")
    run_training(cfg, ds, 100 if args.quick else 300, 50 if args.quick else 100, args.repeats, res, mem)
    if not args.skip_end_to_end:
        run_end_to_end(args.quick, res)
    run_importance_sampling(cfg, ds, args.quick, args.repeats, res, mem)
    run_calibration(ds, args.quick, res)
    if not args.skip_distributed:
        run_distributed(res)
    if not args.skip_bounds:
        run_bounds(cfg, ds, args.quick, args.repeats, res)
    if not args.skip_app:
        run_app(res)
    if not args.skip_load:
        run_load(res, rounds=1 if args.quick else 2)

    print("peak memory of this process per stage (rise over the stage's start): "
          + "; ".join(f"{k_} {v}" for k_, v in mem.items()))
    res["peak_mb"] = {k_: v.peak for k_, v in mem.items()}
    print_targets(res, args)
    res["bench_seconds"] = time.perf_counter() - t_bench
    print(f"\nbench took {res['bench_seconds']:.0f} s")
    if args.json:
        print(json.dumps(res, default=float))
    return 0


def print_targets(res: dict, args):
    """Every target of the run, met or NOT met (a stage skipped prints no line)."""
    print("\ntargets:")
    print(f"  training ≥ {TARGETS['train_ratio']}× the baseline: {res['train_ratio']:.2f}× "
          f"{met(res['train_ratio'], TARGETS['train_ratio'])}")
    print(f"  training ≥ {TARGETS['train_pct_ceiling']:.0f}% of the ceiling: {res['train_pct_ceiling']:.0f}% "
          f"{met(res['train_pct_ceiling'], TARGETS['train_pct_ceiling'])}")
    if not args.skip_end_to_end:
        print(f"  end to end ≥ {E2E_TARGET}× the textbook script, a fresh process: {res['e2e_ratio']:.2f}× "
              f"{met(res['e2e_ratio'], E2E_TARGET)}")
        print(f"  end to end ≥ {E2E_TARGET}× the textbook script, the app's Train click: {res['e2e_click_ratio']:.2f}× "
              f"{met(res['e2e_click_ratio'], E2E_TARGET)}")
        print(f"  the first progress within {TARGET_FIRST_PROGRESS_S} s of the click: "
              f"{res['e2e_first_progress_s']:.2f} s {met(res['e2e_first_progress_s'], TARGET_FIRST_PROGRESS_S, False)}")
    print(f"  importance sampling ≥ {TARGETS['is_ratio']}× the one shot: {res['is_ratio']:.2f}× "
          f"{met(res['is_ratio'], TARGETS['is_ratio'])}")
    print(f"  importance sampling ≥ {TARGETS['is_ratio']}× the one shot in every round, quiet and busy: lowest "
          f"{res['is_min_round_ratio']:.2f}× {met(res['is_min_round_ratio'], TARGETS['is_ratio'])}")
    lo, hi = TARGET_RATIO
    print(f"  error bars: SD over seeds / SE within {lo}–{hi}: {res['calib_ratio']:.2f} "
          f"{'met' if lo <= res['calib_ratio'] <= hi else 'NOT met'}; ±2 SE covers ≥ {TARGET_COVER:.0%}: "
          f"{res['calib_cover']:.1%} {met(res['calib_cover'], TARGET_COVER)}")
    for line in target_lines(res):
        print(line)
    if not args.skip_app:
        for key, what, unit, target in (
                ("app_cold_start_s", "launch to the first page rendered", "s", TARGETS["app_cold_start_s"]),
                ("app_switch_max_s", "every warm page switch", "s", TARGETS["app_switch_s"]),
                ("app_idle_switch_max_s", "every warm page switch, background work done", "s", TARGETS["app_switch_s"]),
                ("app_first_visit_max_s", "every first visit on a warm server", "s", TARGETS["app_first_visit_s"]),
                ("app_server_peak_mb_all_pages", "server memory, first open and every page", "MB",
                 TARGETS["app_memory_mb"])):
            value = res.get(key)
            shown = "not measured" if value is None else f"{value:.2f} {unit}"
            print(f"  {what} ≤ {target:g} {unit}: {shown} {met(value, target, False)}")
    if not args.skip_distributed:
        scaling = res.get("dist_scaling")
        print("  the two-process MultiWorkerMirrored figure beside the one-process one: "
              + (f"{scaling:.2f}× met" if scaling is not None else "not measured NOT met"))
    for line in load_targets(res):
        print(line)


if __name__ == "__main__":
    sys.exit(main())
