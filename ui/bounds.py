"""The bound page's background jobs: AIS, q* and BDMC for a run and a question (ui.jobs: kept when the page
is left, shared by every visitor who asks the same), beside the importance-sampling and grid jobs the log p(x)
page shares (ui.estimates). The default question for the shipped default run is started once per server
(ui.prewarm), so that the page's first open has its answer. Job threads never call Streamlit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vae_tf.runs import RunRef

from . import cache, estimates, widgets
from .jobs import Job

_log = logging.getLogger(__name__)
STEP_CHOICES = (50, 100, 200, 500, 1000, 2000)
CHAIN_CHOICES = (4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Question:
    """What the page computes: the first n test images, L_K's K, AIS's temperatures, chains and start (the prior
    or q(z|x); BDMC's too), q*'s family, how many images BDMC simulates, the seed."""
    n: int = 10
    k: int = 1000
    steps: int = 500
    chains: int = 16
    full: bool = False
    bdmc_images: int = 8
    seed: int = 0
    start: str = "prior"

    @property
    def work(self) -> int:
        """Chain-temperatures of annealing (AIS, and BDMC's two directions): what the page's wait grows with."""
        return (self.n + 2 * self.bdmc_images) * self.steps * self.chains

    @property
    def small(self) -> bool:
        """No more work than the default question: the page may start it on its own (a link never starts more)."""
        return self.work <= DEFAULT.work and self.n * self.k <= DEFAULT.n * DEFAULT.k and not self.full


DEFAULT = Question()


@dataclass
class Sandwich:
    """BDMC on images simulated from the model, with their exact log p(x) where the model has a closed form."""
    bdmc: object  # ais.BDMCResult
    exact: np.ndarray | None


def _keys(ref: RunRef, q: Question) -> dict:
    return {"ais": ("ais", ref, q.n, q.steps, q.chains, q.start, q.seed), "q*": ("q_star", ref, q.n, q.full, q.seed),
            "bdmc": ("bdmc", ref, q.bdmc_images, q.steps, q.chains, q.start, q.seed)}


def _works(model, x, q: Question) -> dict:
    """Each job's work (a function of the job), on its own copy of the first n images."""
    x = np.asarray(x[:q.n], np.float32)

    def ais(job: Job):
        from vae_tf import ais as A

        return A.ais(model, x, num_steps=q.steps, num_chains=q.chains, start=q.start, seed=q.seed,
                     progress=job.report, should_stop=job.stop)

    def q_star(job: Job):
        from vae_tf import gap

        return gap.fit_q_star(model, x, full=q.full, seed=q.seed, progress=job.report, should_stop=job.stop)

    def bdmc(job: Job):
        from vae_tf import ais as A
        from vae_tf import exact

        b = A.bdmc(model, n=q.bdmc_images, num_steps=q.steps, num_chains=q.chains, start=q.start, seed=q.seed,
                   progress=job.report, should_stop=job.stop)
        return Sandwich(b, exact.exact_log_px(model, b.x) if exact.has_closed_form(model) else None)

    return {"ais": ais, "q*": q_star, "bdmc": bdmc}


def start(model, x, ref: RunRef, q: Question, registry=None) -> dict[str, Job]:
    """Start (or find) every job of the question: importance sampling (shared with the log p(x) page), the
    grid or quadrature integral for a latent of 1 or 2 dimensions, AIS, q*, and BDMC (unless bdmc_images is 0)."""
    jobs = {"is": estimates.start_estimate(model, x, ref, q.n, q.k, q.seed, registry)}
    if model.config.latent_dim in (1, 2):  # (not in the prewarm: the default run's latent has 20 dimensions)
        jobs["grid"] = estimates.start_grid(model, x, ref, q.n)
    registry = registry or cache.job_registry()
    works, keys = _works(model, x, q), _keys(ref, q)
    for name in ("ais", "q*", "bdmc"):
        if name != "bdmc" or q.bdmc_images > 0:
            jobs[name] = registry.start(keys[name], works[name], label=f"bound-{name}")
    return jobs


def find(ref: RunRef, q: Question, latent_dim: int) -> dict[str, Job | None]:
    """The question's jobs as they stand, without starting any (None: never asked)."""
    registry = cache.job_registry()
    jobs = {"is": estimates.find(ref, q.n, q.k, q.seed)}
    if latent_dim in (1, 2):
        jobs["grid"] = registry.get(estimates.grid_key(ref, q.n))
    jobs.update({name: registry.get(key) for name, key in _keys(ref, q).items()})
    return jobs


def forget_failed(ref: RunRef, q: Question):
    """Asked again after a Stop or a failure: forget those jobs, so that the next start computes afresh."""
    registry = cache.job_registry()
    estimates.restart_if_failed(ref, q.n, q.k, q.seed)
    for key in _keys(ref, q).values():
        job = registry.get(key)
        if job is not None and not job.running and job.error is not None:
            registry.discard(key)


def result(job: Job | None):
    """A finished job's result; None while it runs, if it failed or was stopped, or was never asked."""
    return None if job is None or job.running or job.error is not None else job.result


LABELS = {"is": ("Importance sampling", "images"), "grid": ("Integrating log p(x) over z", "images"),
          "ais": ("AIS", "image-temperatures"), "q*": ("Fitting q* to each image", "images"),
          "bdmc": ("BDMC, forward then reverse", "image-temperatures")}
STOPPABLE = ("ais", "q*", "bdmc")


def progress_panel(jobs: dict[str, Job | None], key: str):
    """Progress of the running jobs, each of AIS, q* and BDMC with its Stop (widgets.poll_jobs)."""
    widgets.poll_jobs({LABELS[n][0]: j for n, j in jobs.items()}, unit={LABELS[n][0]: LABELS[n][1] for n in jobs},
                      stops={LABELS[n][0]: f"{key}.stop.{n}" for n in STOPPABLE})
