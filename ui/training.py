"""Training from the app: the Train button, the live view, Stop, and what happens afterwards.

Training runs in the script thread. Its on_step callback updates placeholders a few times a
second; every such Streamlit call is also where Streamlit checks for a pending stop, so a click
on Stop (or on anything else, or closing the tab) raises Streamlit's StopException from inside
`fit`. The Trainer catches BaseException, saves the steps already done with status "stopped",
and re-raises. With runner.fastReruns (the default) the click's new script run starts at once in
a new thread, while the old one is still finishing its compiled call and saving: `finalize`
therefore waits for the old run's `done` event before it reads the run and makes it active.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import streamlit as st

from vae_tf import plots, runs
from vae_tf.config import Config
from vae_tf.data import DataError

from . import cache, server, session, sidebar, widgets
from .session import flash

UI_INTERVAL = 0.2  # seconds between progress updates
CHART_INTERVAL = 1.0  # seconds between redraws of the live curves


def suggest_name(root: Path) -> str:
    existing = {p.name for p in root.iterdir()} if root.is_dir() else set()
    base = time.strftime("run-%Y%m%d-%H%M")
    name, i = base, 2
    while name in existing:
        name, i = f"{base}-{i}", i + 1
    return name


def name_problem(name: str, root: Path) -> str | None:
    """Why `name` cannot be used for a new run, or None."""
    try:
        path = runs.run_dir(name, root)
    except runs.CheckpointError as e:
        return str(e)
    if path.exists():
        return f"a run named {name!r} already exists; choose another name (runs are never overwritten)"
    return None


def request(name_key: str = session.TRAIN_NAME):
    """The Train button's callback: runs before the script, so the sidebar draws disabled widgets."""
    config, _ = sidebar.config_from_state()
    if config is not None:
        st.session_state[session.TRAIN_REQUEST] = {"name": st.session_state.get(name_key, ""), "config": config}


# -- after a training (finished, stopped, or interrupted by any rerun) ------------------------------------
def finalize():
    """Called by app.py before the sidebar: make this session's last training the active run."""
    entry = st.session_state.pop(session.TRAIN_IN_PROGRESS, None)
    if not entry:
        return
    name, done = entry["name"], entry["done"]
    if not done.is_set():  # the interrupted run is still saving its last steps
        with st.spinner(f"Saving the steps of {name} done so far…"):
            done.wait(timeout=300)
    root = server.checkpoints_root()
    path = root / name
    if not runs.is_run(path):
        _remove_if_empty(path)
        flash("warning", f"Training of **{name}** stopped before its first step finished; nothing was saved.")
        return
    meta = runs.read_meta(path)
    st.session_state[session.TRAIN_NAME] = suggest_name(root)  # the name is taken now
    if meta.get("status") == "diverged":  # its last good epoch is kept; the active run stays as it was
        flash("error", entry.get("message") or f"Training of **{name}** diverged.")
        return
    st.session_state[session.ACTIVE_RUN] = name
    epochs = meta.get("epochs_done", 0)
    if meta.get("status") == "stopped":
        flash("info", f"Training stopped after {meta.get('steps_done')} steps ({epochs:.2f} epochs). "
                             f"The steps done are saved as run **{name}**, now the active run.")
    else:
        final = runs.read_summary(path)["final"]
        elbo = final.get("test_elbo")
        flash("success", f"Trained **{name}** for {epochs:g} epochs"
                                + (f": test ELBO {elbo:.2f} nats/image" if elbo is not None else "")
                                + ". It is now the active run.")


def _remove_if_empty(path: Path):
    try:
        path.rmdir()  # only an empty directory: a run with files is never deleted
    except OSError:
        pass


# -- the training itself -------------------------------------------------------------------------------
class LiveView:
    """Placeholders updated from the trainer's callbacks, throttled to a few updates a second."""

    def __init__(self, status, config: Config, steps_per_epoch: int):
        self.status, self.config, self.spe = status, config, steps_per_epoch
        self.bar = st.progress(0.0, text="compiling the training step…")
        self.stats = st.empty()
        self.chart = st.empty()
        self.steps: list[list[float]] = []
        self.epochs: list[dict] = []
        self.last_ui = self.last_chart = 0.0
        self.draws = 0

    def on_step(self, r):
        self.steps.append([r.step, r.elbo, r.recon, r.kl])
        now = time.perf_counter()
        if now - self.last_ui >= UI_INTERVAL or r.step == r.total_steps:
            self.last_ui = now
            self.bar.progress(r.step / r.total_steps, text=f"step {r.step:,} of {r.total_steps:,} · "
                                                           f"epoch {r.epoch:.2f} of {self.config.epochs}")
            self.stats.markdown(f"**{r.images_per_sec:,.0f}** images/s · "
                                f"ETA **{widgets.fmt_seconds(r.eta_seconds)}** · "
                                f"ELBO {r.elbo:.1f} = reconstruction {r.recon:.1f} − KL {r.kl:.1f} nats/image")
        if now - self.last_chart >= CHART_INTERVAL:
            self.last_chart = now
            self.draw()

    def on_epoch(self, report):
        self.epochs.append(dataclasses.asdict(report))
        self.status.update(label=f"Training — epoch {report.epoch} of {self.config.epochs} done: "
                                 f"test ELBO {report.test_elbo:.2f}", expanded=True)
        self.draw()

    def draw(self):
        if not self.steps:
            return
        self.draws += 1  # a fresh key per redraw: the same figure twice must not collide
        with self.chart.container():
            st.plotly_chart(plots.training_curves(self.steps, self.spe, self.epochs), width="stretch",
                            key=f"train.live.{self.draws}")


def train(request: dict):
    """Train the requested run in this script thread, then rerun so it becomes the active run."""
    from vae_tf.train import Trainer, TrainingDiverged  # deferred: TensorFlow

    name, config = request["name"], request["config"]
    root = server.checkpoints_root()
    problem = name_problem(name, root)
    if problem:
        _refuse("error", f"Cannot train: {problem}.")
    slots = cache.training_slots()
    if not slots.try_acquire():
        _refuse("warning", "Another training is running, wait or try a smaller run.")
    path = runs.run_dir(name, root)
    try:
        try:
            dataset = cache.dataset(config.dataset)
        except DataError as e:
            _refuse("error", f"Cannot load the data set: {e}")
        try:
            root.mkdir(parents=True, exist_ok=True)
            path.mkdir()  # claims the name atomically: two sessions cannot both write it
        except FileExistsError:
            _refuse("error", f"A run named {name!r} already exists; choose another name (runs are never overwritten).")
        try:
            _train_into(path, name, config, dataset, Trainer, TrainingDiverged)
        except BaseException:
            # Stopped before the first save (a tab closed while the step compiled): no session reruns to
            # clean up after it, so an empty run directory would be left claiming the name.
            if not runs.is_run(path):
                _remove_if_empty(path)
            raise
    finally:
        slots.release()
    st.rerun()  # finalize() makes it the active run and says so


def _refuse(kind: str, message: str):
    """Say why on the next script run, and start it now: this run drew the sidebar and the Train button
    disabled for the training it expected, and a disabled widget cannot be clicked to fix the setting."""
    flash(kind, message)
    st.rerun()


def _train_into(path: Path, name: str, config: Config, dataset, Trainer, TrainingDiverged):
    """Build the trainer and fit it, drawing the live view; a divergence is reported here."""
    try:
        trainer = Trainer(config, dataset, path)
    except ValueError as e:  # e.g. a batch larger than the training set
        _remove_if_empty(path)
        _refuse("error", f"Cannot train: {e}")
    done = threading.Event()  # set once fit() has returned or raised, i.e. after the Trainer's last save
    st.session_state[session.TRAIN_IN_PROGRESS] = {"name": name, "done": done}
    st.button("Stop", key="train.stop", icon=":material/stop_circle:",
              help="Stop after the steps being computed now; every finished step is saved as the run.")
    with st.status(f"Training **{name}** — {trainer.total_steps:,} steps on {trainer.num_train:,} images",
                   expanded=True) as status:
        view = LiveView(status, config, trainer.steps_per_epoch)
        try:
            trainer.fit(on_step=view.on_step, on_epoch=view.on_epoch)
        except TrainingDiverged as e:
            done.set()
            st.session_state.pop(session.TRAIN_IN_PROGRESS, None)
            status.update(label="Training diverged", state="error")
            _remove_if_empty(path)
            if runs.is_run(path):
                meta = runs.mark_diverged(path, str(e))
                # finalize(), on the next run, gives the message and a fresh name (this one is taken)
                st.session_state[session.TRAIN_IN_PROGRESS] = {
                    "name": name, "done": done,
                    "message": f"{e}. Run **{name}** keeps its last good epoch ({meta.get('epochs_done', 0):g} of "
                               f"{config.epochs}); it loads like any other run, marked diverged in the table of runs."}
                st.rerun()
            saved = "" if "nothing was saved" in str(e) else " No epoch had finished: nothing was saved."
            _refuse("error", f"{e}.{saved}")
        finally:
            done.set()
        status.update(label=f"Trained **{name}**", state="complete")


def history_curves(run_summary_history: dict, steps_per_epoch: int):
    steps = np.asarray(run_summary_history.get("steps") or [], np.float64).reshape(-1, 4)
    return plots.training_curves(steps, steps_per_epoch, run_summary_history.get("epochs") or [])
