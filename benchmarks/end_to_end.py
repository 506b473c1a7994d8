"""End to end: a whole training process as a user meets it, vae_tf's against the textbook script.

Each side is a fresh Python process on the same work (the default model, `epochs` epochs of `images`
bundled training images, batch 128), alternated A, B, A, B; the parent times the whole process, and the
child reports where its time went: start-up (interpreter, imports, data, model), the first compiled call
(compilation and its steps), the other steps, the epoch-end test ELBO, and the checkpoint writes (the
textbook script has neither: a user of it would add both).

    python -m benchmarks.end_to_end {ours,textbook} OUT_DIR EPOCHS IMAGES   (the child; prints one JSON line)
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import REPO

T0 = time.perf_counter()


def _ours(out: str, epochs: int, images: int) -> dict:
    from vae_tf.config import Config
    from vae_tf.data import load_fashion_mnist
    from vae_tf.train import Trainer

    t = Trainer(Config(epochs=epochs, max_train_images=images), load_fashion_mnist(), out)
    parts = {"start-up": time.perf_counter() - T0, "evaluation": 0.0, "writes": 0.0}
    first = []

    def timed(fn, part):
        def run(*a, **k):
            t1 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                parts[part] += time.perf_counter() - t1
        return run

    t.evaluate_test, t.save = timed(t.evaluate_test, "evaluation"), timed(t.save, "writes")
    t_fit = time.perf_counter()
    t.fit(on_step=lambda r: first or first.append(time.perf_counter() - t_fit))
    fit = time.perf_counter() - t_fit
    parts["first call"] = first[0]
    parts["steps"] = fit - first[0] - parts["evaluation"] - parts["writes"]
    return parts


def _textbook(epochs: int, images: int) -> dict:
    from vae_tf.config import Config
    from vae_tf.data import load_fashion_mnist

    from .training import baseline_train_fn

    cfg, ds, first = Config(), load_fashion_mnist(), []
    x = ds.x_train.reshape(len(ds.x_train), -1)[:images]
    run = baseline_train_fn(cfg, x, epochs * (len(x) // cfg.batch_size), first)
    t1 = time.perf_counter()
    run()
    done = time.perf_counter()
    return {"start-up": t1 - T0, "first call": first[0] - t1, "steps": done - first[0], "evaluation": 0.0,
            "writes": 0.0}


def _click(out: str, epochs: int, images: int) -> dict:
    """The app's Train click, timed as TrainingJob times it for the progress panel, on a spare worker that has
    finished its imports (the Train page starts one when it is opened; a visitor reads the sidebar meanwhile)."""
    from ui import jobs, workers
    from ui.training import TrainingJob
    from vae_tf.config import Config

    from .app import _until_idle

    workers.keep_ready()
    ready = _until_idle(workers.spare_pid())  # its imports done (within ~2 s: idle for 2 s): it waits for a request
    job = TrainingJob("bench", Path(out), Config(epochs=epochs, max_train_images=images))
    slots = jobs.TrainingSlots(1)
    slots.try_acquire()  # as the Train button's callback does
    thread = threading.Thread(target=job.run, args=(slots,), daemon=True)
    thread.start()  # the click
    while not job.finished.wait(1.0):
        job.beat()  # the visitor's tab, still open
    total = job.seconds
    thread.join()  # it has started the next spare, which is not part of the timing
    workers.discard()
    if job.outcome != "complete":
        raise RuntimeError(f"the click's training ended {job.outcome}: {job.message}")
    return {"total": total, "first progress": job.start_seconds, "first steps": job.compile_seconds,
            "spare ready": ready}


def _child(argv) -> int:
    side, out, epochs, images = argv[0], argv[1], int(argv[2]), int(argv[3])
    parts = _ours(out, epochs, images) if side == "ours" else _textbook(epochs, images)
    print(json.dumps(parts))
    return 0


def end_to_end(epochs: int = 5, images: int = 30_000, repeats: int = 2) -> dict:
    """{side: {"total": median seconds, part: median seconds}} for "vae_tf", "textbook" and "click" (the app's)."""
    seen = {"vae_tf": [], "textbook": [], "click": []}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            seen["click"].append(_click(f"{tmp}/run", epochs, images))
        for side, arg in (("vae_tf", "ours"), ("textbook", "textbook")):
            with tempfile.TemporaryDirectory() as tmp:
                t1 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "benchmarks.end_to_end", arg, f"{tmp}/run", str(epochs),
                                       str(images)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
                total = time.perf_counter() - t1
            if proc.returncode != 0:
                raise RuntimeError(f"the {side} process failed: {proc.stderr[-2000:]}")
            seen[side].append({"total": total, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return {side: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for side, rows in seen.items()}


PARTS = ("start-up", "first call", "steps", "evaluation", "writes")
TARGET_RATIO = 1.5
TARGET_FIRST_PROGRESS_S = 1.5


def run_end_to_end(quick: bool, res: dict):
    """Print the two processes' totals and breakdowns, the click's, and the target lines' figures into res."""
    epochs, images = (1, 8192) if quick else (5, 30_000)
    r = end_to_end(epochs, images, 1 if quick else 2)
    ours, base, click = r["vae_tf"], r["textbook"], r["click"]
    res.update(e2e_seconds=ours["total"], e2e_baseline_seconds=base["total"], e2e_ratio=base["total"] / ours["total"],
               e2e_parts={"vae_tf": ours, "textbook": base, "click": click},
               e2e_click_ratio=base["total"] / click["total"], e2e_first_progress_s=click["first progress"])
    print(f"end to end: a fresh process training the default model, {epochs} epochs of {images:,} images (medians; "
          "the\n  textbook script has no epoch-end test ELBO and writes nothing)")
    print(f"  {'seconds':<14}{'total':>8}" + "".join(f"{p:>12}" for p in PARTS))
    for label, d in (("vae_tf train", ours), ("textbook", base)):
        print(f"  {label:<14}{d['total']:8.1f}" + "".join(f"{d[p]:12.1f}" for p in PARTS))
    print(f"  {'ratio':<14}{res['e2e_ratio']:7.2f}× (the textbook's seconds ÷ vae_tf's)")
    print(f"  the app's Train click, same training (a spare worker, ready {click['spare ready']:.1f} s after it was "
          f"started, before the click): the run saved {click['total']:.1f} s after the click, "
          f"{res['e2e_click_ratio']:.2f}× the textbook\n  script; the first progress shown (data loaded, model built) "
          f"at {click['first progress']:.2f} s, the first steps at {click['first steps']:.2f} s\n")


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
