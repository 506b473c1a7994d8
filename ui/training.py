"""Training from the app: a worker thread per visitor, outside any script run, that pages poll.

The Train button's callback checks the request, claims the run's folder and starts a `TrainingJob`;
the job runs the Trainer in a worker process (vae_tf.worker, ui.workers: the memory of its compiled
steps goes back when it ends) and reads its progress from it (the Trainer checkpoints every epoch and stops
between compiled calls on request). A page switch, a widget change or a reload therefore never
stops it. Every page shows its progress in the sidebar with one Stop; the Train page draws its curves.
The job watches a heartbeat that the visitor's pages beat while they poll it: once every tab has been
closed for ABANDON_SECONDS it stops and saves what it has. `finalize`, on the visitor's next script
run after the job ends, says how it went and makes a run that learned the active run.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from vae_tf import runs
from vae_tf.config import Config
from vae_tf.data import PUBLISHED_SHAPES, DataError

from . import cache, disk, memory, server, session, sidebar, widgets, workers
from .escape import md
from .session import flash

ABANDON_SECONDS = float(os.environ.get("VAE_LAB_ABANDON_SECONDS", "60"))
POLL_SECONDS = 1.0
RATE_SECONDS = 1.0  # images/s once this much training time has been seen
STOP_GRACE_SECONDS = 30.0  # a worker asked to stop that has not ended by then is killed (its last epoch is kept)


class TrainingJob:
    """One visitor's training: its progress as plain numbers, read by the pages; no Streamlit here."""

    def __init__(self, name: str, path: Path, config: Config, resume: bool = False):
        self.name, self.path, self.config, self.resume = name, path, config, resume
        self.stage = "starting: loading the data and building the model"
        self.last: dict = {}  # the latest step report
        self.steps: list[list[float]] = []  # [step, elbo, recon, kl] per step
        self.epochs: list[dict] = []
        self.total_steps = self.steps_per_epoch = 1
        self.start_seconds: float | None = None  # from the click to the model built (the worker's "start")
        self.compile_seconds: float | None = None  # from the click to the first compiled call done
        self.images_per_sec: float | None = None  # since the first compiled call: compilation left out
        self.outcome = ""  # complete, stopped, diverged or failed, once finished
        self.message = ""
        self.baseline: float | None = None  # test log-likelihood of the pixel-independent baseline
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.last_seen = time.monotonic()
        self.saved_epochs = 0  # epochs on disk: a page following the training reloads when it grows
        self.pid: int | None = None  # the worker process
        self.sessions: set[str] = set()  # the visitor's sessions that have shown this training
        self._t0 = time.perf_counter()
        self._first: tuple[float, int] | None = None

    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    @property
    def seconds(self) -> float:
        """Since the click."""
        return time.perf_counter() - self._t0

    def beat(self):
        """Called by the visitor's script runs and progress polls; remembers their sessions too."""
        self.last_seen = time.monotonic()
        ctx = get_script_run_ctx()
        if ctx is not None:
            self.sessions.add(ctx.session_id)

    def _visitor_connected(self) -> bool:
        """Whether a tab of the visitor is still open: a page busy drawing for a while beats no heartbeat, but its
        session stays active until its tab closes. (No runtime, as in AppTest: the heartbeat alone decides.)"""
        try:
            runtime = Runtime.instance()
        except RuntimeError:
            return False
        return any(runtime.is_active_session(s) is True for s in list(self.sessions))

    def _should_stop(self) -> bool:
        if self.stop.is_set():
            return True
        if time.monotonic() - self.last_seen <= ABANDON_SECONDS:
            return False
        if self._visitor_connected():
            self.last_seen = time.monotonic()
            return False
        return True

    def _on_step(self, r: dict):
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, r["images_seen"])
            self.compile_seconds = now - self._t0
            self.stage = "training"
        elif now - self._first[0] >= RATE_SECONDS:  # two reports read from the pipe at once would say millions
            self.images_per_sec = (r["images_seen"] - self._first[1]) / (now - self._first[0])
        self.steps.append([r["step"], r.get("objective", r["elbo"]), r["recon"], r["kl"]])  # L_k for an IWAE run
        self.last = r

    def _on_epoch(self, report: dict):
        self.epochs.append(report)
        self.saved_epochs += 1

    def _watch(self, proc):
        """Ask the worker to stop once the visitor has pressed Stop or gone; kill it if it will not."""
        asked = None
        while proc.poll() is None:
            if asked is None and self._should_stop():
                asked = time.monotonic()
                try:
                    proc.stdin.write("stop\n")
                    proc.stdin.flush()
                except OSError:
                    pass
            elif asked is not None and time.monotonic() - asked > STOP_GRACE_SECONDS:
                proc.kill()
            time.sleep(0.2)

    def _events(self, proc):
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.pop("event", "")
            if kind == "start":
                self.total_steps, self.steps_per_epoch = event["total_steps"], event["steps_per_epoch"]
                self.start_seconds = time.perf_counter() - self._t0
                self.stage = "compiling the training step"
            elif kind == "step":
                self._on_step(event)
            elif kind == "epoch":
                self._on_epoch(event)
            elif kind == "end":
                self.outcome, self.message = event["outcome"], event["message"]
                self.baseline = event.get("baseline")

    def run(self, slots):
        """Train in a worker process (vae_tf.worker), reading its events; see the module's docstring."""
        try:
            proc = workers.take()
            self.pid = proc.pid
            proc.stdin.write(json.dumps({"config": self.config.to_dict(), "run_dir": str(self.path),
                                         "resume": self.resume, "data": cache.data_file(self.config.dataset)})
                             + "\n")
            proc.stdin.flush()
            watcher = threading.Thread(target=self._watch, args=(proc,), daemon=True)
            watcher.start()
            self._events(proc)
            proc.wait()
            watcher.join()
            if not self.outcome:  # killed (out of memory, or by hand): its last saved epoch is kept, marked so
                self.outcome = "interrupted"
                self.message = f"the training process ended unexpectedly (exit code {proc.returncode})"
                if runs.is_run(self.path):
                    runs.mark_interrupted(self.path, self.message)
            if self.outcome == "diverged" and runs.is_run(self.path):
                runs.mark_diverged(self.path, self.message)
        except Exception as e:  # the process could not start, or its pipe broke: reported to the visitor
            self.outcome, self.message = "failed", str(e)
        finally:
            slots.release()
            runs.remove_unsaved(self.path)
            self.finished.set()
            memory.give_back()  # what the training's thread allocated and freed
            workers.keep_ready()  # the next training's worker, now that this one no longer needs the cores

    def start(self, slots) -> TrainingJob:
        threading.Thread(target=self.run, args=(slots,), name=f"vae-lab-train-{self.name}", daemon=True).start()
        return self


# -- the Train button --------------------------------------------------------------------------------------
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


def cost(config: Config, clean: bool = False) -> tuple[str, str | None]:
    """(what the training is estimated to take, why the server refuses it, or None), before it starts."""
    from vae_tf.budget import training_cost

    try:
        if config.dataset in PUBLISHED_SHAPES:  # known without loading it (the Train page's first run stays light)
            n, (h, w) = PUBLISHED_SHAPES[config.dataset]
        else:
            ds = cache.dataset(config.dataset)
            n, (h, w) = len(ds.x_train), ds.image_shape
        c = training_cost(config, h * w, n, (h, w))
    except (DataError, ValueError) as e:
        return "", md(e)
    max_mb, max_minutes, gflops = server.training_budget()
    minutes = c.minutes(gflops)
    took = f"about {c.memory_mb / 1024:.1f} GB of memory and {widgets.fmt_duration(60 * minutes)}"
    if c.memory_mb > max_mb:
        return took, (f"this run would need {took} ({c.parameters:,} parameters); this server allows a training "
                      f"{max_mb / 1024:.1f} GB. Try fewer or narrower hidden layers, a smaller batch or fewer samples")
    if minutes > max_minutes:
        return took, (f"this run would take {took}; this server allows a training {max_minutes:g} minutes. Try "
                      "fewer epochs or training images, or a smaller model")
    return took, disk.problem(session.visitor(), c.disk_mb, "this run", clean=clean)


def current() -> TrainingJob | None:
    """This visitor's training (running, or finished and not yet reported)."""
    return cache.trainings().get(session.visitor())


def request(name_key: str = session.TRAIN_NAME):
    """The Train button's callback: check, claim the folder and start the training in its worker."""
    config, _ = sidebar.config_from_state()
    if config is None or (current() is not None and current().running):
        return
    name = st.session_state.get(name_key, "")
    root = server.checkpoints_root()
    problem = name_problem(name, root)
    if problem:
        return flash("error", f"Cannot train: {md(problem)}.")
    try:
        cache.dataset(config.dataset)  # its message here, not the worker's after a wait
    except DataError as e:
        return flash("error", f"Cannot load the data set: {md(e)}")
    _, refused = cost(config, clean=True)  # the click: abandoned visitors' data goes if this run needs the room
    if refused:
        return flash("error", f"Cannot train: {refused}.")
    _launch(name, runs.run_dir(name, root), config, resume=False)


def continue_run(name: str, more_epochs: int):
    """The Continue button's callback: train the run `name` for more epochs, from where it stopped."""
    path = runs.run_dir(name, server.checkpoints_root())
    config = runs.read_config(path)
    try:
        cache.dataset(config.dataset)
    except DataError as e:
        return flash("error", f"Cannot load the data set: {md(e)}")
    _launch(name, path, config.replace(epochs=config.epochs + int(more_epochs)), resume=True)


def _launch(name: str, path: Path, config: Config, resume: bool):
    slots = cache.training_slots()
    if not slots.try_acquire():
        return flash("warning", "Another training is running, wait or try a smaller run.")
    if not resume:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()  # claims the name atomically: two sessions cannot both write it
        except FileExistsError:
            slots.release()
            return flash("error", f"A run named {name!r} already exists; choose another name.")
        except OSError as e:
            slots.release()
            return flash("error", f"Cannot write the run: the checkpoints folder is not writable ({md(e.strerror)}).")
        runs.set_owner(path, session.visitor())  # the run is this visitor's: listed first, theirs to delete
    cache.trainings().put(session.visitor(), TrainingJob(name, path, config, resume).start(slots))


# -- after a training ----------------------------------------------------------------------------------------
def finalize():
    """Called by app.py before the sidebar: report this visitor's finished training, once."""
    job = current()
    if job is None:
        return
    job.beat()
    if job.running:
        return
    cache.trainings().pop(session.visitor())
    st.session_state[session.TRAIN_NAME] = suggest_name(server.checkpoints_root())  # the name is taken now
    if job.outcome == "failed":
        return flash("error", f"Cannot train: {md(job.message)}")
    if not runs.is_run(job.path):
        saved = "" if "nothing was saved" in job.message else " No epoch had finished: nothing was saved."
        return flash("error", f"{md(job.message)}.{saved}") if job.outcome == "diverged" else flash(
            "warning", f"Training of **{job.name}** stopped before its first step finished; nothing was saved.")
    if job.outcome == "interrupted":
        meta = runs.read_meta(job.path)
        return flash("error", f"Training of **{job.name}** was interrupted: {md(job.message)}. Its last saved epoch "
                              f"({meta.get('epochs_done', 0):g} of {job.config.epochs}) is kept, marked interrupted; "
                              "continue it from the Train page.")
    if job.outcome == "diverged":
        meta = runs.read_meta(job.path)
        return flash("error", f"{md(job.message)}. Run **{job.name}** keeps its last good epoch "
                              f"({meta.get('epochs_done', 0):g} of {job.config.epochs}); it loads like any other "
                              "run, marked diverged in the table of runs.")
    _report(job)


def _report(job: TrainingJob):
    meta, final = runs.read_meta(job.path), runs.read_summary(job.path)["final"]
    elbo = final.get("test_elbo")
    if elbo is not None and job.baseline is not None and elbo < job.baseline:
        return flash("warning", did_not_learn(job, elbo))
    st.session_state[session.ACTIVE_RUN] = job.name
    epochs = meta.get("epochs_done", 0)
    if job.outcome == "stopped":
        return flash("info", f"Training stopped after {meta.get('steps_done')} steps ({epochs:.2f} epochs). The "
                             f"steps done are saved as run **{job.name}**, now the active run.")
    flash("success", f"Trained **{job.name}** for {plural(epochs, 'epoch')}"
                     + (f": test ELBO {elbo:.2f} nats/image" if elbo is not None else "")
                     + ". It is now the active run.")


def did_not_learn(job: TrainingJob, elbo: float) -> str:
    c = job.config
    cause = (f"a learning rate of {c.learning_rate:g} is likely too high" if c.learning_rate > 0.01 else
             f"a fixed σ of {c.sigma} may not suit the data" if c.likelihood == "gaussian" and c.sigma != "learned"
             else "more epochs or a larger model may help")
    return (f"Run **{job.name}** did not learn: its test ELBO, {elbo:.2f} nats/image, is below the "
            f"{job.baseline:.2f} of a model that ignores its input (each pixel on its own, fitted to the training "
            f"set). {cause.capitalize()}. It is saved but not made the active run.")


def plural(n: float, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")
