"""The shipped default run's default answers, computed once per server in the background so that the log p(x),
bound and Theory pages open with them: the bound page's importance sampling first (a second: its ladder is drawn
from the first rungs ready), the log p(x) page's, the Theory page's numbers of test image 0 (its first visit
computed them in the script run, ~5 s alone and far more beside other work), then AIS, q* and BDMC. One thread
with its own copy of the run and its data. It draws nothing: the Theory page's numbers go through the same
cached functions the page calls (ui.cache's answers are the server's: one computed off a script run is there
for all)."""
from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from vae_tf.runs import RunRef

from . import bounds, cache, catalog, estimates, server
from .jobs import Job

_log = logging.getLogger(__name__)


@st.cache_resource
def start(root: str) -> Job | None:
    """Once per server and checkpoints root (None: the default run is not there)."""
    name = server.DEFAULT_RUN
    if name not in catalog.names(Path(root)):
        return None
    ref = RunRef.of(name, root)
    registry = cache.job_registry()  # fetched here: the job's thread must not call Streamlit

    def warm(job: Job):
        from vae_tf import data, runs

        try:
            run = runs.load_run(ref.path, name=name)
            ds = data.load_dataset(run.config.dataset)
            x = ds.test_images(run.config.likelihood)
        except Exception as e:  # only a head start: the pages compute (and report) it themselves
            _log.warning("could not pre-compute the default answers for %s: %s", name, e)
            return None
        q, first = bounds.DEFAULT, (estimates.DEFAULT_IMAGES, estimates.DEFAULT_K, estimates.DEFAULT_SEED)
        steps = (lambda: [estimates.start_estimate(run.model, x, ref, q.n, q.k, q.seed, registry)],
                 lambda: [estimates.start_estimate(run.model, x, ref, *first, registry)],
                 lambda: theory_page(ref, run.model, x, root, (run.config.dataset, ds)),
                 lambda: list(bounds.start(run.model, x, ref, q, registry).values()))
        for begin in steps:
            for j in begin():
                while not j.finished.wait(1.0):
                    if job.stop.is_set():
                        return None
        return None

    return registry.start(("prewarm", root), warm, label="prewarm", heavy=False)  # it only waits on its jobs


def theory_page(ref: RunRef, model, x, root: str, loaded: tuple) -> list:
    """The Theory page's numbers of test image 0 for the default run, and the shipped linear-Gaussian run's beside
    them (pages/theory.py's calls, argument for argument); nothing to wait for afterwards. loaded: (name, data set) of
    the default run's data, already loaded: the linear-Gaussian run's too, unless it was trained on another."""
    from vae_tf import data, runs

    try:
        cache.derivation(ref, 0, cache.IS_K, 0, model, x)
        cache.reference(ref, 0, model, x)
        cache.importance(ref, 0, cache.IS_K, 0, model, x)
        if server.GAUSSIAN_RUN in catalog.names(Path(root)):
            gref = RunRef.of(server.GAUSSIAN_RUN, root)
            g = runs.load_run(gref.path, name=gref.name)
            gds = loaded[1] if g.config.dataset == loaded[0] else data.load_dataset(g.config.dataset)
            gx = gds.test_images(g.config.likelihood)
            cache.exact_log_px(gref, g.model, gx)
            cache.ppca_test_log_px(g.config.dataset, g.config.latent_dim)
            cache.derivation(gref, 0, cache.IS_K, 0, g.model, gx)
    except Exception as e:  # only a head start, as above
        _log.warning("could not pre-compute the Theory page's numbers: %s", e)
    return []
