"""Training: Adam on the negative ELBO (or the IWAE bound), several steps per compiled call.

The Trainer's loop: epochs of shuffled batches, compiled calls of several steps each
(step.py), the per-step curve and test ELBO per epoch, a checkpoint every epoch,
stop, resume and divergence. Every random draw is stateless and keyed by (seed, step),
so a run is reproducible and a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from . import runs
from .config import Config
from .data import TEST_BINARIZATION_SEED, Dataset
from .model import SIGMA_FLOOR, VAE
from .networks import xla_ok
from .step import compile_draws, compile_run_steps, default_steps_per_call

EVAL_BATCH = 2000
SIGMA_IMAGES = 10_000  # training images whose mean squared error sets a learned σ at each epoch's end
MAX_CURVE_POINTS = 2000


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class StepReport:
    step: int  # global step, from 1
    total_steps: int
    epoch: float  # fractional epochs done
    images_seen: int
    seconds: float
    images_per_sec: float
    eta_seconds: float
    loss: float
    elbo: float
    recon: float
    kl: float
    objective: float | None = None  # what the step maximises: the ELBO, or L_k for an IWAE run (−loss)


@dataclass
class EpochReport:
    epoch: int  # 1-based
    train_elbo: float
    train_recon: float
    train_kl: float
    test_elbo: float
    test_recon: float
    test_kl: float
    kl_weight: float
    seconds: float
    images_per_sec: float


@dataclass
class TrainResult:
    run_dir: Path | None
    model: VAE
    history: dict
    stopped: bool
    steps_done: int
    epochs_done: float
    seconds: float


@dataclass
class _Clock:
    """When fit began, the step it began at, and a smoothed steps/s for the ETA."""
    t0: float
    start_step: int
    rate: float | None = None

    def tick(self, call_rate: float):
        self.rate = call_rate if self.rate is None else 0.8 * self.rate + 0.2 * call_rate


class Trainer:
    """Trains a VAE on a Dataset, writing a checkpoint into `run_dir` at the end of every epoch."""

    def __init__(self, config: Config, dataset: Dataset, run_dir: Path | str | None = None,
                 resume: bool = False, strategy: tf.distribute.Strategy | None = None,
                 steps_per_call: int | None = None, jit_compile: bool | None = None):
        """steps_per_call steps run inside one compiled call (a stop lands between calls; None: as many
        as ~CALL_FLOPS hold, at most STEPS_PER_CALL); jit_compile=None means XLA on a single device,
        where it fuses the step's small ops, except for conv networks (networks.xla_ok)."""
        self.config, self.dataset = config, dataset
        self.steps_per_call = max(1, int(steps_per_call or default_steps_per_call(config, dataset.num_pixels,
                                                                                 dataset.image_shape)))
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.strategy = strategy or tf.distribute.get_strategy()
        self.is_chief = is_chief(self.strategy)
        replicas = self.strategy.num_replicas_in_sync
        self.jit_compile = (replicas == 1 and xla_ok(config)) if jit_compile is None else bool(jit_compile)
        if config.batch_size % replicas:
            raise ValueError(f"batch_size ({config.batch_size}) must divide evenly over the {replicas} devices")
        x = dataset.x_train.reshape(len(dataset.x_train), -1)
        if config.max_train_images:
            x = x[: config.max_train_images]
        self.num_train = len(x)
        if config.batch_size > self.num_train:
            raise ValueError(f"batch_size ({config.batch_size}) is larger than the number of training images "
                             f"({self.num_train}); lower batch_size or raise max_train_images")
        self.steps_per_epoch = self.num_train // config.batch_size  # the remainder is reshuffled next epoch
        self.total_steps = self.steps_per_epoch * config.epochs
        self.x_test = dataset.test_images(config.likelihood)
        # steps: [step, objective, recon, kl], the objective the ELBO or, for an IWAE run, L_k (history["objective"])
        self.history = {"epochs": [], "steps": [], "objective": config.objective_name}
        self.steps_done = 0

        with self.strategy.scope():
            self.model = VAE(config, dataset.num_pixels, dataset.image_shape)
            self.optimizer = keras.optimizers.Adam(config.learning_rate)
            self.optimizer.build(self.model.trainable_variables)
            self.x_train = tf.constant(x)  # uint8, (N, D): 1 byte a pixel on the device
        if resume:
            self._restore()
        elif config.likelihood == "gaussian":
            self._start_at_the_mean(x)
        self._draws_fn = compile_draws(config, self.x_train, dataset.num_pixels, self.steps_per_call)
        self._run_steps = compile_run_steps(self.model, self.optimizer, self.strategy, self.steps_per_call,
                                            self.jit_compile)
        self._eval_fn = tf.function(self._eval_batch, reduce_retracing=True)
        self._sq_error_fn = tf.function(self._sq_error, reduce_retracing=True)

    # -- one compiled call -----------------------------------------------------------
    def _step_fn(self, idx, step0, kl_weight):
        """len(idx) steps from global step step0 on the batches idx (n, B) → (n, 3) loss, recon, kl."""
        idx, step0 = np.asarray(idx, np.int32), int(step0)
        x, eps = self._draws_fn(tf.constant(idx), tf.constant(step0, tf.int64))
        n = len(idx)
        return self._run_steps(x, eps, tf.constant(n, tf.int32), tf.constant(kl_weight, tf.float32))[:n]

    def _eval_batch(self, x, seed):
        recon, kl = self.model.elbo_terms(x, seed, 1)
        return recon, kl

    def evaluate_test(self, seed: int = TEST_BINARIZATION_SEED) -> tuple[float, float, float]:
        """Test ELBO (one sample, analytic KL, fixed seeds): mean (elbo, recon, kl) in nats/image."""
        recons, kls = [], []
        for i in range(0, len(self.x_test), EVAL_BATCH):
            r, k = self._eval_fn(self.x_test[i:i + EVAL_BATCH], tf.constant([seed, i], tf.int32))
            recons.append(r.numpy())
            kls.append(k.numpy())
        recon, kl = float(np.concatenate(recons).mean()), float(np.concatenate(kls).mean())
        return recon - kl, recon, kl

    # -- the loop ------------------------------------------------------------------
    def fit(self, on_step: Callable[[StepReport], None] | None = None,
            on_epoch: Callable[[EpochReport], None] | None = None,
            stop: threading.Event | Callable[[], bool] | None = None) -> TrainResult:
        """Train to `config.epochs`. A stop request ends after the current call (≤ steps_per_call steps)
        and saves every finished step; a NaN or infinite loss raises TrainingDiverged and leaves the
        last checkpoint as it was."""
        should_stop = stop.is_set if isinstance(stop, threading.Event) else (stop or (lambda: False))
        clock = _Clock(time.perf_counter(), self.steps_done)
        stopped = False
        try:
            while self.steps_done < self.total_steps:
                report = self._fit_epoch(should_stop, on_step, clock)
                if report is None:
                    stopped = True
                    break
                self.history["epochs"].append(asdict(report))
                self.save()
                if on_epoch:
                    on_epoch(report)
        except TrainingDiverged:
            raise
        except BaseException:
            # Ctrl-C, or Streamlit stopping the script when a tab closes: keep every finished step.
            if self.steps_done > clock.start_step:
                self.save(status="stopped")
            raise
        if stopped and self.steps_done > clock.start_step:
            self.save(status="stopped")
        return TrainResult(self.run_dir, self.model, self.history, stopped, self.steps_done,
                           self.steps_done / self.steps_per_epoch, time.perf_counter() - clock.t0)

    def _fit_epoch(self, should_stop, on_step, clock: _Clock) -> EpochReport | None:
        """The rest of the current epoch, call by call, then its test ELBO; None if a stop request came first."""
        cfg, B = self.config, self.config.batch_size
        epoch, offset = divmod(self.steps_done, self.steps_per_epoch)
        order = epoch_order(cfg.seed, epoch, self.num_train)
        kl_weight = cfg.kl_weight(epoch)
        sums, count, t_epoch = np.zeros(3), 0, time.perf_counter()
        for s in range(offset, self.steps_per_epoch, self.steps_per_call):
            if should_stop():
                return None
            n = min(self.steps_per_call, self.steps_per_epoch - s)
            t_call = time.perf_counter()
            metrics = np.asarray(self._step_fn(order[s * B:(s + n) * B].reshape(n, B), self.steps_done, kl_weight))
            now = time.perf_counter()
            clock.tick(n / max(now - t_call, 1e-9))
            self._check_finite(metrics, epoch)
            first = self.steps_done + 1
            self.steps_done += n  # the weights are now n steps on, whatever a callback does next
            rows = metrics.astype(float)
            iwae = cfg.objective == "iwae"  # its curve records the bound it maximises, L_k = −loss
            for j, (loss, recon, kl) in enumerate(rows):
                sums += (recon - kl, recon, kl)
                count += 1
                self._record_step(first + j, -loss if iwae else recon - kl, recon, kl)
            if on_step:
                self._report_steps(on_step, rows, first, now, clock)
        if cfg.learned_sigma:
            self.set_optimal_sigma()
        test_elbo, test_recon, test_kl = self.evaluate_test()
        seconds = time.perf_counter() - t_epoch
        train = sums / max(count, 1)
        return EpochReport(epoch + 1, *map(float, train), test_elbo, test_recon, test_kl,
                           float(kl_weight), seconds, count * B / seconds)

    def _start_at_the_mean(self, x_uint8: np.ndarray):
        """A Gaussian decoder starts with its output bias at the training images' mean, f(z) ≈ x̄: otherwise a bias
        that must travel ~0.5 at Adam's ~learning_rate per step takes more steps than a short run has. (A conv
        decoder's bias is per channel, not per pixel: it keeps its initialiser.)"""
        bias = self.model.decoder.get_layer("dec_out").bias
        if tuple(bias.shape) == (self.dataset.num_pixels,):
            mean = np.zeros(bias.shape, np.float64)
            for i in range(0, len(x_uint8), 10_000):
                mean += x_uint8[i:i + 10_000].sum(0, dtype=np.float64)
            bias.assign((mean / (255.0 * len(x_uint8))).astype(np.float32))

    def set_optimal_sigma(self, max_images: int = SIGMA_IMAGES, seed: int = TEST_BINARIZATION_SEED) -> float:
        """A learned σ, set in closed form: σ² = E_x E_q(z|x) ‖x − f(z)‖² / D over the first max_images training
        images (one draw z ~ q per image, fixed seeds), the σ that maximises their ELBO for the current encoder
        and decoder (the σ-VAE's optimum over the data rather than one batch). Returns σ."""
        total, count = 0.0, 0
        for i in range(0, min(self.num_train, max_images), EVAL_BATCH):
            x = tf.cast(self.x_train[i:min(i + EVAL_BATCH, max_images)], tf.float32) / 255.0
            total += float(self._sq_error_fn(x, tf.constant([seed, i], tf.int32)))
            count += int(x.shape[0]) * self.dataset.num_pixels
        sigma = max(math.sqrt(total / count), SIGMA_FLOOR)
        self.model.raw_sigma.assign(math.log(math.expm1(max(sigma - SIGMA_FLOOR, 1e-12))))  # σ = softplus(raw) + floor
        return sigma

    def _sq_error(self, x, seed):
        eps = tf.random.stateless_normal(tf.stack([1, tf.shape(x)[0], self.config.latent_dim]), seed)
        mean = self.model.likelihood(self.model.posterior(x).bijector.forward(eps)).mean()
        return tf.reduce_sum(tf.square(x - mean))

    def _check_finite(self, metrics: np.ndarray, epoch: int):
        """Raise TrainingDiverged if a step of this call (steps_done not yet advanced) lost its finite loss."""
        bad = np.flatnonzero(~np.all(np.isfinite(metrics), axis=1))
        if len(bad):
            raise TrainingDiverged(
                f"the loss became {metrics[bad[0], 0]} at step {self.steps_done + bad[0] + 1} (epoch "
                f"{epoch + 1}): training diverged. Try a smaller learning_rate than {self.config.learning_rate:g}"
                + (f"; the last good checkpoint ({self.history['epochs'][-1]['epoch']} epochs) is kept"
                   if self.history["epochs"] and self.run_dir else "; nothing was saved"))

    def _report_steps(self, on_step, rows: np.ndarray, first: int, now: float, clock: _Clock):
        B = self.config.batch_size
        for j, (loss, recon, kl) in enumerate(rows):
            step = first + j
            on_step(StepReport(step, self.total_steps, step / self.steps_per_epoch, step * B,
                               now - clock.t0, (self.steps_done - clock.start_step) * B / (now - clock.t0),
                               (self.total_steps - step) / clock.rate, loss, recon - kl, recon, kl,
                               -loss if self.config.objective == "iwae" else recon - kl))

    def _record_step(self, step, elbo, recon, kl):
        """Keep the per-step curve light: at most MAX_CURVE_POINTS, evenly spaced in steps."""
        steps = self.history["steps"]
        stride = steps[1][0] - steps[0][0] if len(steps) > 1 else 1
        if steps and step - steps[-1][0] < stride:
            return
        steps.append([step, round(elbo, 4), round(recon, 4), round(kl, 4)])
        if len(steps) > MAX_CURVE_POINTS:  # thin to every other point, and record half as often
            self.history["steps"] = steps[::2]

    # -- checkpoints -----------------------------------------------------------------
    def save(self, status: str | None = None):
        if self.run_dir is None or not self.is_chief:  # in a cluster, one worker writes the run
            return
        if status == "stopped" and self.config.learned_sigma and self.steps_done > 0:
            self.set_optimal_sigma()  # σ is otherwise set at epoch ends; training itself never reads it
        # The compiled step can hide NaN weights (a fused MatMul+ReLU maps NaN to 0, so the loss stays
        # finite); never let them overwrite the last good checkpoint.
        bad = [name for name, w in self.model.named_weights().items() if not np.all(np.isfinite(w))]
        if bad:
            raise TrainingDiverged(
                f"weights became NaN or infinite ({', '.join(bad)}) by step {self.steps_done}: training diverged. "
                f"Try a smaller learning_rate than {self.config.learning_rate:g}; the last checkpoint is kept")
        done = self.steps_done >= self.total_steps
        meta = {"dataset": self.dataset.name, "num_pixels": self.dataset.num_pixels,
                "image_shape": list(self.dataset.image_shape), "class_names": list(self.dataset.class_names),
                "num_train": self.num_train, "steps_done": self.steps_done, "steps_per_epoch": self.steps_per_epoch,
                "epochs_done": round(self.steps_done / self.steps_per_epoch, 4),
                "status": status or ("complete" if done else "training"),
                "num_parameters": self.model.num_parameters()}
        runs.save_run(self.run_dir, self.model, self.config, self.history, meta, self.optimizer)

    def _restore(self):
        if self.run_dir is None or not runs.is_run(self.run_dir):
            raise runs.CheckpointError(f"nothing to resume at {self.run_dir}")
        saved = runs.read_config(self.run_dir)
        if saved.replace(epochs=self.config.epochs) != self.config:
            raise runs.CheckpointError(
                f"{self.run_dir / runs.CONFIG_FILE} differs from the requested config; a run resumes with its own "
                "settings (only epochs may grow)")
        run = runs.load_run(self.run_dir)
        self.model.assign_weights(run.model.named_weights())
        runs.load_optimizer_state(self.run_dir, self.optimizer, self.model.trainable_variables)
        self.history = run.history
        self.steps_done = int(run.meta["steps_done"])
        # A partly done epoch has no per-epoch entry yet; a resumed run redoes none of its steps.


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints: always, except in a multi-worker cluster (TF_CONFIG),
    where only the chief does — or worker 0 when the cluster names no chief. The weights are the same
    on every worker (the gradients are all-reduced), so one copy is all there is to save."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id or 0) == 0


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled image order of one epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def train(config: Config, dataset: Dataset, run_dir: Path | str | None = None, **fit_kwargs) -> TrainResult:
    """Train a new run from scratch (refuses to overwrite an existing run)."""
    if run_dir is not None and Path(run_dir).exists() and any(Path(run_dir).iterdir()):
        raise runs.CheckpointError(f"{run_dir} already holds a run; choose another name, or resume it")
    return Trainer(config, dataset, run_dir).fit(**fit_kwargs)
