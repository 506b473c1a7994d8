"""Command line: python -m vae_tf {train, evaluate, runs, bench} --help

Thin: the flags come from config.FIELDS, the work from train.Trainer, evaluate.evaluate_run and
runs.list_runs; the benchmark is the repository's `python -m benchmarks`."""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .config import FIELDS, Config, ConfigError, format_number

DEFAULTS = Config()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(p: argparse.ArgumentParser):
    """One flag per Config field, named after it, with its default and range in the help."""
    p.add_argument("--data", dest="dataset", default=DEFAULTS.dataset, metavar="{fashion_mnist|mnist|PATH.npz}",
                   help=f"{FIELDS['dataset'].help} (default: {DEFAULTS.dataset})")
    for name, spec in FIELDS.items():
        if name == "dataset":
            continue
        default = getattr(DEFAULTS, name)
        shown = ",".join(map(str, default)) if name == "hidden" else default
        rng = f"; one of {', '.join(spec.choices)}" if spec.choices else (
            f"; {format_number(spec.lo)} to {format_number(spec.hi)}" if spec.lo is not None else "")
        if name == "sigma":
            rng += ", or 'learned'"
        p.add_argument(_flag(name), dest=name, default=None, metavar=name.upper(),
                       choices=spec.choices or None, help=f"{spec.help} (default: {shown}{rng})")


def config_from_args(args) -> Config:
    """The flags given, as Config fields: Config itself turns their text into numbers, and refuses bad ones."""
    return Config(**{name: getattr(args, name) for name in FIELDS if getattr(args, name, None) is not None})


class ProgressBar:
    """A one-line text progress bar on stderr."""

    def __init__(self, label: str, stream=None):
        # Look sys.stderr up now, not at import: a redirected stderr (tests, the app) must get the bar.
        self.label, self.stream, self.last = label, stream or sys.stderr, 0.0

    def __call__(self, done: float, total: float, text: str = "", force: bool = False):
        now = time.perf_counter()
        if not force and now - self.last < 0.2 and done < total:
            return
        self.last = now
        frac = done / total if total else 1.0
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        self.stream.write(f"\r{self.label} [{bar}] {100 * frac:5.1f}% {text}")
        self.stream.flush()
        if done >= total:
            self.stream.write("\n")


def cmd_train(args) -> int:
    from . import runs
    from .data import load_dataset
    from .train import Trainer

    config = config_from_args(args)
    out = Path(args.out)
    runs.check_run_name(out.name)
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise runs.CheckpointError(f"{out} already holds a run; choose another --out, or add --resume")
    strategy = make_strategy(args.strategy)
    dataset = load_dataset(config.dataset)
    trainer = Trainer(config, dataset, out, resume=args.resume, strategy=strategy)
    bar = ProgressBar("train")
    print(f"training {trainer.model.num_parameters():,} parameters on {trainer.num_train:,} {dataset.name} images "
          f"for {config.epochs} epochs ({trainer.total_steps:,} steps) on {strategy.num_replicas_in_sync} device(s)"
          + ("" if trainer.is_chief else "; the chief worker saves the run"), file=sys.stderr)

    def on_step(r):
        bar(r.step, r.total_steps, f"epoch {r.epoch:5.2f}  ELBO {r.elbo:8.2f}  {r.images_per_sec:7.0f} img/s  "
                                   f"ETA {r.eta_seconds:5.0f}s")

    def on_epoch(r):
        bar.stream.write(f"\repoch {r.epoch}: train ELBO {r.train_elbo:.2f} (recon {r.train_recon:.2f}, "
                         f"KL {r.train_kl:.2f})  test ELBO {r.test_elbo:.2f}  {r.images_per_sec:.0f} img/s  "
                         f"{r.seconds:.1f}s\n")

    result = trainer.fit(on_step=on_step, on_epoch=on_epoch)
    final = result.history["epochs"][-1] if result.history["epochs"] else {}
    summary = {"run": str(out), "epochs_done": result.epochs_done, "seconds": round(result.seconds, 2),
               "images_per_sec": final.get("images_per_sec"), "test_elbo": final.get("test_elbo"),
               "train_elbo": final.get("train_elbo")}
    print(json.dumps(summary) if args.json else "\n".join(f"{k:>15}: {v}" for k, v in summary.items()))
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_run

    if args.strategy == "multiworker":
        raise ValueError("evaluate runs on one machine; --strategy mirrored spreads its images over the "
                         "machine's devices (a cluster would only repeat the same estimate on every worker)")
    bar = None if args.json else ProgressBar(f"log p(x), K={args.k}")
    progress = (lambda done, total, sec: bar(done, total, f"{done}/{total} images  {sec:.0f}s")) if bar else None
    start = None if args.json else (lambda n, devices: print(
        f"evaluating {n:,} {args.split} images on {devices} device(s)", file=sys.stderr))
    out = evaluate_run(Path(args.checkpoint), num_images=args.num_images, k=args.k, seed=args.seed,
                       strategy=make_strategy(args.strategy), data=args.data, split=args.split,
                       on_progress=progress, on_start=start, per_image=args.per_image, estimator=args.estimator,
                       ais_steps=args.ais_steps, ais_chains=args.ais_chains, gap_anatomy=args.gap_anatomy,
                       gap_full=args.gap_full, bdmc=args.bdmc, bdmc_images=args.bdmc_images,
                       on_stage=None if args.json else _stage_bars())
    if args.json:
        for rows in ("per_image", "bdmc_per_image"):
            if rows in out:
                out[rows] = [_finite(row) for row in out[rows]]
        print(json.dumps(_finite(out)))
        return 0
    print(f"{'':>14}  nats/image (± standard error over images)")
    print(f"{'ELBO':>14}  {out['elbo']:10.3f} ± {out['elbo_stderr']:.3f}")
    if out["estimator"] == "ais":
        print(f"{'log p(x) (AIS)':>14}  {out['log_px']:10.3f} ± {out['log_px_stderr']:.3f}   {out['ais_steps']} "
              f"temperatures × {out['ais_chains']} chains (IS, K = {out['k']}: {out['is_log_px']:.3f})")
        print(f"{'gap':>14}  {out['gap']:10.3f} ± {out['gap_stderr']:.3f}   AIS − ELBO, an estimate of KL(q ‖ p(z|x))")
    else:
        print(f"{'log p(x) (IS)':>14}  {out['log_px']:10.3f} ± {out['log_px_stderr']:.3f}   K = {out['k']}")
        print(f"{'gap':>14}  {out['gap']:10.3f} ± {out['gap_stderr']:.3f}   L_K − ELBO, a lower estimate of "
              "KL(q ‖ p(z|x))")
    _print_bound(out)
    for key in ("exact_log_px", "grid_log_px"):
        if key in out:
            print(f"{key:>14}  {out[key]:10.3f}")
    print(f"{'mean ESS':>14}  {out['ess_mean']:10.1f} of {out['k']}")
    print(f"{'unreliable':>14}  {out['unreliable_images']:10d} images with Pareto k̂ > 0.7 (their estimate is likely "
          "too low and its error bar means nothing)")
    print(f"{out['num_images']} images in {out['seconds']:.1f}s")
    return 0


def _stage_bars():
    """on_stage for evaluate_run: one progress bar per stage (AIS, q*, BDMC), made when the stage first reports."""
    bars = {}

    def on_stage(stage, done, total):
        bars.setdefault(stage, ProgressBar(stage))(done, total)
    return on_stage


def _print_bound(out: dict):
    """The gap's anatomy and the BDMC sandwich, where asked for."""
    if "amortization_gap" in out:
        print(f"{'ELBO(q*)':>14}  {out['elbo_optimal_q']:10.3f} ± {out['elbo_optimal_q_stderr']:.3f}   the best "
              f"{out['q_star_family']} Gaussian per image ({out['q_star_converged']} of {out['num_images']} converged)")
        print(f"{'amortization':>14}  {out['amortization_gap']:10.3f} ± {out['amortization_gap_stderr']:.3f}   "
              "ELBO(q*) − ELBO")
        print(f"{'approximation':>14}  {out['approximation_gap']:10.3f} ± {out['approximation_gap_stderr']:.3f}   "
              f"log p(x) − ELBO(q*), log p(x) from {out['gap_anatomy_log_px']}")
    if "bdmc_width" in out:
        print(f"{'BDMC':>14}  {out['bdmc_lower']:10.3f} ≤ log p(x) ≤ {out['bdmc_upper']:.3f}   width "
              f"{out['bdmc_width']:.3f} on {out['bdmc_num_images']} images simulated from the model")


def _finite(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def cmd_runs(args) -> int:
    from . import runs

    df = runs.list_runs(args.root)
    print(df.to_string(index=False) if len(df) else f"no runs in {args.root}")
    return 0


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":  # every visible GPU, else every (logical) CPU device
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG set to describe the cluster, e.g. "
                             '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
                             '"index": 0}} on the first machine')
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vae_tf", description="VAE Lab: train and evaluate VAEs.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a run and save it")
    add_config_flags(t)
    t.add_argument("--out", required=True, help="run directory, e.g. checkpoints/NAME")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker"],
                   help="tf.distribute strategy: one device, MirroredStrategy over local devices, or "
                        "MultiWorkerMirroredStrategy configured by TF_CONFIG")
    t.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("evaluate", help="ELBO, importance-sampled log p(x) and the gap",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--checkpoint", required=True, help="run directory, e.g. checkpoints/NAME")
    e.add_argument("--data", default=None, help="data set (default: the run's own)")
    e.add_argument("--split", default="test", choices=["test", "train"])
    e.add_argument("--num-images", type=int, default=1000)
    e.add_argument("--k", type=int, default=1000, help="importance samples per image")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker"],
                   help="mirrored: split the images of every batch over the local devices (same estimate, "
                        "computed in parallel); multiworker is refused: the estimate runs on one machine")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--per-image", action="store_true",
                   help="add per_image, one entry per image (log_px, log_px_stderr, elbo, gap, ess, pareto_k, …); "
                        "printed with --json")
    e.add_argument("--estimator", default="is", choices=["is", "ais"],
                   help="log_px from importance sampling with q (K samples) or annealed importance sampling from "
                        "the prior; with ais, gap is AIS − ELBO and the IS answer is is_log_px")
    e.add_argument("--ais-steps", type=int, default=500, help="AIS temperatures (also for --bdmc and --gap-anatomy)")
    e.add_argument("--ais-chains", type=int, default=16, help="AIS chains per image")
    e.add_argument("--gap-anatomy", action="store_true",
                   help="add elbo_optimal_q (the best Gaussian per image), amortization_gap = ELBO(q*) − ELBO and "
                        "approximation_gap = log p(x) − ELBO(q*), log p(x) exact where known (closed form; "
                        "grid or quadrature for a 1- or 2-D latent), else AIS")
    e.add_argument("--gap-full", action="store_true", help="with --gap-anatomy: a full-covariance q* (not diagonal)")
    e.add_argument("--bdmc", action="store_true",
                   help="add bdmc_lower and bdmc_upper: forward and reverse AIS on images simulated from the model, "
                        "which sandwich their log p(x)")
    e.add_argument("--bdmc-images", type=int, default=16, help="images simulated for --bdmc")
    e.set_defaults(fn=cmd_evaluate)

    r = sub.add_parser("runs", help="list the runs in a checkpoints directory")
    r.add_argument("--root", default="checkpoints")
    r.set_defaults(fn=cmd_runs)

    sub.add_parser("bench", help="benchmark training and importance sampling against baselines: runs "
                                 "python -m benchmarks from the repository (bench --help)")
    return p


def run_benchmark(args: list[str]) -> int:
    """The benchmark lives outside the library, in the repository's benchmarks/: run it as its own process."""
    repo = Path(__file__).resolve().parent.parent
    if not (repo / "benchmarks" / "__main__.py").is_file():
        print(f"error: the benchmark is not here (no {repo / 'benchmarks'}); it ships with the repository",
              file=sys.stderr)
        return 2
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=repo).returncode


def main(argv=None) -> int:
    from .data import DataError
    from .runs import CheckpointError

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its own parser: python -m vae_tf bench --help
        return run_benchmark(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, DataError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as e:  # TrainingDiverged and friends: one line, not a traceback
        from .train import TrainingDiverged

        if isinstance(e, TrainingDiverged):
            print(f"error: {e}", file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":
    sys.exit(main())
