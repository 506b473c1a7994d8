"""The shipped runs' default answers, computed once per server in the background, so that a first visit finds
them ready.

First the bound page's importance sampling (short, and its ladder is drawn from it), then what the pages
used to compute in their own script runs, page by page in the navigation's order: Reconstructions, the latent
maps, True posterior, Theory, Why not sample the prior?, Latent diagnostics (seconds each alone, far more beside
other visitors); then the log p(x) page's estimate, which that page polls, and AIS, q* and BDMC. One thread.
Runs and test sets come from ui.cache: the very model objects the pages use, so that their compiled functions
are traced here once. The answers go through the same cached functions the pages call, argument for argument
(tests/test_app.py checks that no page's first visit computes any of them again); ui.cache's answers are the
server's, so one computed off a script run is there for every visitor. It draws nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import streamlit as st

from vae_tf.runs import RunRef

from . import bounds, cache, catalog, estimates, priority, script_runs, server
from .jobs import Job

_log = logging.getLogger(__name__)

PRIOR_KS = (1, 3, 10, 30, 100, 300, 1000, 3000, 5000)  # the prior-sampling page's k at its default largest k
PRIOR_REPEATS = 8
RECONSTRUCTED = 16  # the Reconstructions page's default count of images and of prior samples
MAPPED, MANIFOLD_SIDE = 3000, 15  # the latent maps' default count of test images; codes per side of the manifold
PATH_STEPS, PATH_CLASSES = 10, (0, 7)  # the Interpolation page's default steps, and which of the classes A and B are
Q_SAMPLES = 20  # the True posterior page's default count of draws from q
SHOWN_DIMS = 12  # the Latent diagnostics page's traversal rows: the 8 largest KL and the 4 smallest
LULL_S, LULL_MOST_S = 5.0, 20.0  # it begins once no script run has begun for LULL_S (at most LULL_MOST_S after launch)


@st.cache_resource
def start(root: str) -> Job | None:
    """Once per server and checkpoints root (None: the default run is not there)."""
    if server.DEFAULT_RUN not in catalog.names(Path(root)):
        return None
    registry = cache.job_registry()  # fetched here: the job's thread must not call Streamlit's script API

    def warm(job: Job):
        def wait(started: list[Job]) -> bool:  # False: the server is stopping
            for j in started:
                while not j.finished.wait(1.0):
                    if job.stop.is_set():
                        return False
            return True

        if not script_runs.wait_for_lull(LULL_S, LULL_MOST_S, job.stop):  # the first pages first
            return None
        try:
            loaded = _load(Path(root), server.DEFAULT_RUN)
        except Exception as e:  # only a head start: the pages load (and report) it themselves
            _log.warning("could not load %s to pre-compute its answers: %s", server.DEFAULT_RUN, e)
            return None
        if loaded is None:
            return None
        ref, model, x = loaded
        q, first = bounds.DEFAULT, (estimates.DEFAULT_IMAGES, estimates.DEFAULT_K, estimates.DEFAULT_SEED)
        # the bound page's importance sampling first: it is short, and the page's ladder is drawn from it
        if not wait([estimates.start_estimate(model, x, ref, q.n, q.k, q.seed, registry)]):
            return None
        for name, step in FIRST_VISITS:
            if job.stop.is_set():
                return None
            try:
                step(Path(root))
            except Exception as e:  # only a head start: the pages compute (and report) it themselves
                _log.warning("could not pre-compute the %s page's default answers: %s", name, e)
            priority.lower_compute_pools()  # TensorFlow's and XLA's pools, started by the steps so far
        if wait([estimates.start_estimate(model, x, ref, *first, registry)]):
            wait(list(bounds.start(model, x, ref, q, registry).values()))
        return None

    return registry.start(("prewarm", root), warm, label="prewarm", heavy=False)


def first_visits(root: Path):
    """Every page's default answers that its first visit would compute, at once (the tests' entry)."""
    for _, step in FIRST_VISITS:
        step(root)


def _load(root: Path, name: str) -> tuple[RunRef, object, np.ndarray] | None:
    """(ref, model, test images) of a run as the pages load it (ui.active), or None when it is not there."""
    if name not in catalog.names(root):
        return None
    ref = catalog.ref(name, root)
    run = cache.run(ref)
    return ref, run.model, cache.test_set(run.config.dataset, run.config.likelihood)[0]


def reconstructions(root: Path):
    from vae_tf import data, plots

    ref, model, x = _load(root, server.DEFAULT_RUN)
    idx = tuple(int(i) for i in data.pick_random(len(x), RECONSTRUCTED, 0))
    recon, _ = cache.reconstructions(ref, idx, False, 0, model, x)
    cache.prior_samples(ref, RECONSTRUCTED, 0, model)
    plots.image_grid(recon[:2])  # plotly's first figure of this process loads its modules: not in a page's run


def latent_map(root: Path):
    """The codes of the Interpolation page's map and the Latent map page's, the former's default paths, and the
    latter's decoded manifold."""
    from vae_tf import data, latent

    ref, model, x = _load(root, server.DEFAULT_RUN)
    proj, points = cache.latent_map(ref, min(MAPPED, len(x)), model, x)
    config = cache.run(ref).config
    y = cache.test_set(config.dataset, config.likelihood)[1]
    if y is not None:  # the default ends A and B: an image of the first class and one of the eighth (or last)
        classes = sorted(int(c) for c in np.unique(y))
        ends = [data.pick_one(y, classes[min(i, len(classes) - 1)], seed) for seed, i in enumerate(PATH_CLASSES)]
        cache.interpolation(ref, *ends, PATH_STEPS, model, x)
    u, center, axes = latent.manifold_codes(proj, points, MANIFOLD_SIDE)
    cache.decoded_grid(ref, u, u, center, axes, model)


def posterior(root: Path):
    loaded = _load(root, server.TWO_D_RUN)
    if loaded is None:
        return
    ref, model, x = loaded
    g = cache.grid_posterior(ref, 0, model, x)
    cache.importance(ref, 0, cache.IS_K, 0, model, x)
    cache.posterior_samples(ref, 0, Q_SAMPLES, 0, model, x)
    marks = [g.q_loc] + [z for z, _ in cache.posterior_modes(ref, 0, model, x)]
    cache.decode(ref, tuple(tuple(float(v) for v in z) for z in marks), model)


def theory(root: Path):
    """Test image 0 of the default run, and the shipped linear-Gaussian run's numbers beside them."""
    ref, model, x = _load(root, server.DEFAULT_RUN)
    cache.derivation(ref, 0, cache.IS_K, 0, model, x)
    cache.reference(ref, 0, model, x)
    cache.importance(ref, 0, cache.IS_K, 0, model, x)
    loaded = _load(root, server.GAUSSIAN_RUN)
    if loaded is not None:
        gref, g, gx = loaded
        cache.exact_log_px(gref, g, gx)
        cache.ppca_test_log_px(g.config.dataset, g.config.latent_dim)
        cache.derivation(gref, 0, cache.IS_K, 0, g, gx)


def prior_sampling(root: Path):
    ref, model, x = _load(root, server.DEFAULT_RUN)
    cache.proposal_study(ref, 0, PRIOR_KS, PRIOR_REPEATS, model, x)
    cache.reference(ref, 0, model, x)


def latent_diagnostics(root: Path):
    ref, model, x = _load(root, server.DEFAULT_RUN)
    diag = cache.latent_diagnostics(ref, len(x), 0, model, x)
    order = diag.order if len(diag.order) <= SHOWN_DIMS else np.concatenate([diag.order[:8], diag.order[-4:]])
    cache.traversal(ref, 0, tuple(int(j) for j in order), 3.0, 9, model, x)


FIRST_VISITS = (("Reconstructions", reconstructions), ("Interpolation and Latent map", latent_map),
                ("True posterior", posterior), ("Theory", theory),
                ("Why not sample the prior?", prior_sampling), ("Latent diagnostics", latent_diagnostics))
