"""A training's progress on every page: the sidebar's bar and Stop, following its saved epochs, the live curves.

Drawn from the visitor's `TrainingJob` (ui.training) in fragments that poll it every second without
rerunning the page; polling is also the visitor's heartbeat, which keeps the training going.
"""
from __future__ import annotations

import time

import numpy as np
import streamlit as st

from vae_tf import plots, runs

from . import session, widgets
from .training import POLL_SECONDS, TrainingJob, current

FOLLOW_SECONDS = 10.0


def progress_text(job: TrainingJob) -> str:
    if job.stage != "training" or not job.last:  # the stages before the first steps, each with the time so far
        return f"{job.name}: {job.stage}… {job.seconds:.0f} s"
    r = job.last
    rate = f" · {job.images_per_sec:,.0f} images/s" if job.images_per_sec else ""
    test = (f" · epoch {len(job.epochs)} of {job.config.epochs} done: test ELBO {job.epochs[-1]['test_elbo']:.1f}"
            if job.epochs else "")
    return (f"{job.name}: epoch {r['epoch']:.2f} of {job.config.epochs}{rate} · "
            f"ETA {widgets.fmt_seconds(r['eta_seconds'])}{test}")


def sidebar(slot):
    """The visitor's training in the sidebar, redrawn every second; the page reruns when it ends, and, while
    the visitor follows it, when a new epoch has been saved — FOLLOW_SECONDS after the page had finished
    drawing at the soonest, so that the visitor always has a drawn page to read and leave (counted from the
    sidebar's draw instead, a page slower to draw than an epoch was rerun as soon as it was done, and a click
    on another page could wait for the training's end)."""
    job = current()
    if job is None:
        return
    if not job.running:  # it ended after this script run's finalize() (a quick run, a slow sidebar): report it now
        st.rerun()
    seen, state = job.saved_epochs, {"runs": 0, "drawn": None}

    @st.fragment(run_every=POLL_SECONDS)
    def progress():
        job.beat()
        now = time.monotonic()
        state["runs"] += 1
        if state["runs"] == 2:  # the first run on the timer, after the inline one: the page has been drawn by now
            state["drawn"] = now
        fresh = (following(job) and job.saved_epochs != seen and state["drawn"] is not None
                 and now - state["drawn"] >= FOLLOW_SECONDS)
        if not job.running or fresh:
            st.rerun()
        fraction = job.last.get("step", 0) / max(job.total_steps, 1)
        st.progress(min(1.0, fraction), text=progress_text(job))
        st.button("Stop", key="train.stop", icon=":material/stop_circle:", on_click=job.stop.set,
                  help="Stop after the steps being computed now; every finished epoch and step is saved.")
    with slot:
        st.caption("Training in the background: switch pages freely.")
        st.toggle("Follow the training", key=session.FOLLOW, value=True,
                  help="Show the model as last saved (each epoch) on every page while it trains.")
        progress()


def following(job: TrainingJob) -> bool:
    return bool(st.session_state.get(session.FOLLOW, True)) and runs.is_run(job.path)


def follow():
    """Called by app.py before the sidebar: while following, the training run is the active run."""
    job = current()
    if job is not None and job.running and following(job):
        st.session_state[session.ACTIVE_RUN] = job.name


def live_curves(steps_per_epoch: int):
    """The Train page's live curves of this visitor's training."""
    job = current()
    if job is None or not job.running:
        return

    @st.fragment(run_every=POLL_SECONDS)
    def curves():
        job.beat()
        if job.compile_seconds is not None:
            built = f" (the model was built after {job.start_seconds:.1f} s)" if job.start_seconds is not None else ""
            st.caption(f"The first steps came {job.compile_seconds:.1f} s after the click{built}: the data loaded in "
                       "the training's own process, the model built and its step compiled (images/s leave it out).")
        if job.steps:
            st.plotly_chart(plots.training_curves(np.asarray(job.steps), job.steps_per_epoch, job.epochs,
                                                  objective=job.config.objective_name), width="stretch",
                            key="train.live")
    st.subheader(f"Training {job.name}")
    curves()


def history_curves(history: dict, steps_per_epoch: int):
    steps = np.asarray(history.get("steps") or [], np.float64).reshape(-1, 4)
    return plots.training_curves(steps, steps_per_epoch, history.get("epochs") or [],
                                 objective=history.get("objective", "ELBO"))  # a run from before: its ELBO
