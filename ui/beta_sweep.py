"""The β sweep of the Latent diagnostics page: short trainings at β ∈ BETAS with the sidebar's settings, one
at a time under the server's training cap, kept as ordinary runs named beta-sweep-<stamp>-b<β>; then what
each run's code carries.

A sweep is a background job (ui.jobs) keyed on its checkpoints root and stamp, so it survives a page switch
and a second tab finds it. It trains each run in a worker process, as the Train page does
(ui.training.TrainingJob), waiting for the training slot before each, and measures each run in the job's
thread with the library (no Streamlit calls there): on the first SWEEP_IMAGES test images, the latent
diagnostics (diagnostics.diagnose) and log p(x) by importance sampling with SWEEP_K draws from q, its ELBO
and the reconstruction term E_q[log p(x|z)] = ELBO + KL from the same draws, each ± its standard error
over the images. A sweep found on disk without a job (the server restarted) is measured again, not retrained.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vae_tf import runs
from vae_tf.config import Config

from . import cache
from .jobs import Job

BETAS = (0.5, 1.0, 2.0, 4.0, 8.0)
SWEEP_EPOCHS = 2  # at most, per run: a sweep of five runs stays a few minutes on a shared CPU
SWEEP_IMAGES, SWEEP_K = 1000, 200
NAME_RE = re.compile(r"^beta-sweep-(\d{8}-\d{6})-b(\d+(?:\.\d+)?)$")


@dataclass
class SweepResult:
    stamp: str
    rows: list[dict] = field(default_factory=list)  # one per measured β, as plots.beta_sweep_curves wants
    problems: dict = field(default_factory=dict)  # β → why it has no row
    stopped: bool = False


def run_name(stamp: str, beta: float) -> str:
    return f"beta-sweep-{stamp}-b{beta:g}"


def sweep_config(config: Config) -> Config:
    """The sidebar's settings for a sweep: at most SWEEP_EPOCHS epochs, and the ELBO objective (β weighs
    its KL term; the IWAE bound has none). β itself is set per run."""
    epochs = min(config.epochs, SWEEP_EPOCHS)
    return config.replace(epochs=epochs, kl_warmup_epochs=min(config.kl_warmup_epochs, epochs), objective="elbo",
                          beta=1.0)


def sweeps_on_disk(root: Path, visible) -> dict[str, dict[float, str]]:
    """stamp → {β: run name} of the sweeps under root whose runs pass `visible(name)`, newest first."""
    found: dict[str, dict[float, str]] = {}
    for name in runs.run_names(root):
        m = NAME_RE.fullmatch(name)
        if m and visible(name):
            found.setdefault(m.group(1), {})[float(m.group(2))] = name
    return dict(sorted(found.items(), reverse=True))


def key(root: Path, stamp: str) -> tuple:
    return ("beta-sweep", str(root), stamp)


def job(root: Path, stamp: str) -> Job | None:
    return cache.job_registry().get(key(root, stamp))


def start(root: Path, stamp: str, dataset, config: Config | None = None, visitor: str = "") -> Job:
    """The sweep's job (the running or finished one, else a new one). With a config it trains the runs not
    yet on disk; without, it only measures those that are. Call on the script thread: the registry, the
    training slots and the data set are fetched here, for the job's thread."""
    registry, slots = cache.job_registry(), cache.training_slots()
    base = sweep_config(config) if config is not None else None

    def work(j: Job) -> SweepResult:
        from . import training  # the Train page's worker-process training

        result = SweepResult(stamp)
        j.phase = "starting"
        for i, beta in enumerate(BETAS):
            name = run_name(stamp, beta)
            path = runs.run_dir(name, root)
            if not runs.is_run(path) and base is not None:
                problem = _train(j, training.TrainingJob, name, path, base.replace(beta=beta), slots,
                                 visitor)
                if problem:
                    result.problems[beta] = problem
            if j.stop.is_set():
                result.stopped = True
                break
            if runs.is_run(path) and beta not in result.problems:
                j.phase = f"measuring {name}"
                result.rows.append(measure(runs.load_run(path), dataset, beta))
            elif beta not in result.problems:
                result.problems[beta] = "not on disk"
            j.report(i + 1, len(BETAS))
        return result

    return registry.start(key(root, stamp), work, label="beta-sweep", heavy=False)  # trains in worker processes


def phase(j: Job) -> str:
    """What the sweep's job is doing now (set by its thread as it goes)."""
    return getattr(j, "phase", "starting")


def _train(j: Job, TrainingJob, name: str, path: Path, config: Config, slots, visitor: str) -> str | None:
    """Train one run of the sweep in a worker process once the training slot is free; why not, or None."""
    while not slots.try_acquire():
        j.phase = "waiting for the training slot: another training is running on this server"
        if j.stop.wait(1.0):
            return "stopped before it started"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir()  # claims the name, as the Train button does
    except OSError as e:
        slots.release()
        return f"cannot write the run ({e.strerror or e})"
    if visitor:
        runs.set_owner(path, visitor)
    t = TrainingJob(name, path, config)
    t.stop = j.stop  # the sweep's Stop stops the training between its compiled calls
    t.start(slots)  # releases the slot when it ends
    while not t.finished.wait(0.5):
        t.beat()  # the sweep is watching it: not abandoned
        j.phase = (f"training {name}: step {t.last['step']:,} of {t.total_steps:,}" if t.last
                   else f"training {name}: {t.stage}")
    if t.outcome in ("diverged", "failed"):
        return f"{t.outcome}: {t.message}"
    return None if runs.is_run(path) else "stopped before its first epoch was saved"


def _mean_se(a) -> tuple[float, float]:
    a = np.asarray(a, np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")


def measure(run, dataset, beta: float) -> dict:
    """One β's row: the latent diagnostics, log p(x), the ELBO and its two terms on the first SWEEP_IMAGES
    test images (module docstring), means with their standard errors over those images."""
    from vae_tf import diagnostics, estimators

    x = dataset.test_images(run.config.likelihood)[:SWEEP_IMAGES]
    diag = diagnostics.diagnose(run.model, x)
    est = estimators.estimate_log_px(run.model, x, k=SWEEP_K)
    mu, s = diagnostics.posterior_moments(run.model, x)
    kl = diagnostics.kl_terms(mu, s).sum(1)  # per image, exact
    row = {"beta": float(beta), "run": run.name, "epochs": run.meta.get("epochs_done"), "images": len(x),
           "latent_dim": run.config.latent_dim,
           "k": SWEEP_K, "active_units": diag.active_units, "mutual_information": diag.mutual_information,
           "mutual_information_se": diag.mutual_information_stderr, "marginal_kl": diag.marginal_kl}
    for name, values in (("kl", kl), ("recon", est.elbo + kl), ("elbo", est.elbo), ("log_px", est.log_px)):
        row[name], row[f"{name}_se"] = _mean_se(values)
    return row


def new_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")
