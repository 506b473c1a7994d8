"""Annealed importance sampling (Neal 2001) for log p(x), and bidirectional Monte Carlo (Grosse et al. 2015).

A path of densities from a normalised start p0(z) (the prior, or q(z|x)) to the posterior:

    π_t(z) ∝ γ_t(z) = p0(z)^(1−β_t) · p(x, z)^β_t,      0 = β_0 < β_1 < … < β_T = 1

so Z_0 = 1 and Z_T = ∫ p(x, z) dz = p(x). Draw z_0 ~ p0, move z_{t−1} → z_t with a kernel that leaves
π_t invariant (HMC here), and accumulate

    log w = Σ_{t=1..T} [log γ_t(z_{t−1}) − log γ_{t−1}(z_{t−1})]
          = Σ_{t=1..T} (β_t − β_{t−1}) [log p(x, z_{t−1}) − log p0(z_{t−1})].

w is an importance weight on the extended space (z_0 … z_{T−1}): the proposal is the forward chain, the
target is π_T(z_{T−1}) times the chain run backwards (each step's reversal with respect to π_t), and their
ratio telescopes to the product above. So E[w] = p(x) exactly, and by Jensen E[log w] ≤ log p(x): each
chain's log w is a stochastic lower bound, and log-mean-exp over K chains is a tighter one (Wu et al. 2017
use AIS this way to evaluate decoders). The bound tightens to log p(x) as T grows.

Reverse AIS runs the same chain from β = 1 to β = 0, started at an exact posterior sample z ~ p(z|x). Its
weight w' estimates Z_0 / Z_T = 1 / p(x) without bias, so E[−log w'] ≥ log p(x): a stochastic UPPER bound.
Exact posterior samples exist for data simulated from the model itself (z ~ p(z), x ~ p(x|z) makes z a
draw from p(z|x)): that is BDMC (Grosse et al. 2015), which sandwiches log p(x) between the two bounds; the
sandwich's width bounds both bounds' errors, and it shrinks as T grows.

The step size. HMC's step size is adapted during the run toward an acceptance rate of 0.65, but only from
extra PILOT chains whose weights are thrown away. A chain whose step size follows its own past acceptance
has a kernel that depends on its current state, which breaks the π_t-invariance the weight argument needs
(the bias is usually small, but it is there); the pilot chains are independent of the counted ones, so given
them every counted chain's weight is exactly unbiased, and the counted chains are independent of each other.
Steps are in units of p0's scale (1 for the prior, q's s(x) per dimension for q): a fixed preconditioning.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from . import hmc
from .draws import even_parts, power_parts, spans
from .estimators import Cancelled, logsumexp
from .networks import xla_ok

tfd = tfp.distributions

STARTS = ("prior", "posterior")
SCHEDULES = ("sigmoid", "geometric")
ROWS_PER_CALL = 2048  # chains × images in one batch: big enough matmuls, small enough to report progress


# -- the β schedule ------------------------------------------------------------------------------------------
def beta_schedule(num_steps: int, kind: str = "sigmoid", delta: float = 4.0) -> np.ndarray:
    """T + 1 inverse temperatures from β_0 = 0 to β_T = 1 (float64).

    sigmoid (Grosse et al. 2015): β̃_t = σ(δ(2t/T − 1)), rescaled so that β_0 = 0 and β_T = 1; it spends
    its steps at both ends, where π_t changes fastest per unit of β (near 0 the likelihood's first
    sliver of weight already moves the mass; near 1 the posterior is narrowest).
    geometric: β geometric from 10⁻⁴ to 0.1 over the first half of the steps, then linear to 1."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {kind!r}")
    T = int(num_steps)
    if T < 1:
        raise ValueError(f"num_steps must be at least 1; got {num_steps}")
    if kind == "sigmoid":
        s = 1 / (1 + np.exp(-delta * (2 * np.arange(T + 1) / T - 1)))
        return (s - s[0]) / (s[-1] - s[0])
    half = max(T // 2, 1)
    geometric = np.geomspace(1e-4, 0.1, half) if T > 1 else np.zeros(0)
    linear = np.linspace(0.1 if T > 1 else 0.0, 1.0, T - len(geometric) + 1)[1:]
    return np.concatenate([[0.0], geometric, linear])


# -- the result -----------------------------------------------------------------------------------------------
@dataclass
class AISResult:
    """Per-image AIS estimates of log p(x) for N images, K counted chains each."""
    log_px: np.ndarray  # (N,) log-mean-exp of the chains' log w (a lower bound); reverse: −log mean w' (an upper one)
    stderr: np.ndarray  # (N,) delta-method MC error of log_px across chains: √(1/ESS − 1/K)
    log_weights: np.ndarray  # (K, N) each chain's own estimate of log p(x) (reverse: −log w')
    acceptance: np.ndarray  # (N,) mean HMC acceptance probability of the counted chains over the temperatures
    step_sizes: np.ndarray  # (T − 1, N) the step of each move before its jitter, in units of p0's scale
    num_steps: int
    num_chains: int
    num_leapfrog: int
    start: str
    schedule: str
    reverse: bool
    seconds: float
    grad_evals: int  # gradient evaluations of log p(x, z) in all, pilot chains included
    final_z: np.ndarray | None = None  # (K, N, d) each counted chain's last state; forward, weighted by w: p(z|x)

    @property
    def ess(self) -> np.ndarray:
        """(Σw)² / Σw² over the chains (of w' for a reverse run): K when the weights are equal."""
        lw = -self.log_weights if self.reverse else self.log_weights
        return np.exp(2 * logsumexp(lw, 0) - logsumexp(2 * lw, 0))

    def summary(self) -> dict:
        """Means over images; log_px_stderr is over images (it covers the choice of images), mc_stderr is
        the Monte-Carlo error of the mean with the images held fixed."""
        n = len(self.log_px)
        return {"log_px": float(np.mean(self.log_px)),
                "log_px_stderr": float(np.std(self.log_px, ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
                "mc_stderr": float(np.sqrt(np.sum(self.stderr ** 2)) / n), "ess_mean": float(np.mean(self.ess)),
                "acceptance": float(np.mean(self.acceptance)), "num_images": n, "num_steps": self.num_steps,
                "num_chains": self.num_chains, "num_leapfrog": self.num_leapfrog, "start": self.start,
                "schedule": self.schedule, "reverse": self.reverse, "seconds": self.seconds,
                "grad_evals": self.grad_evals}


def _summarise(lw: np.ndarray, reverse: bool):
    """log p̂ and its delta-method SE. Var(log mean w) ≈ Var(w) / (K E[w]²) = 1/ESS − 1/K with the sample
    moments; for reverse chains the same on w' = exp(−lw), and log p̂ = −log mean w'."""
    sign = -1.0 if reverse else 1.0
    w = sign * lw
    K = lw.shape[0]
    lse = logsumexp(w, 0)
    ess = np.exp(2 * lse - logsumexp(2 * w, 0))
    stderr = np.sqrt(np.maximum(1 / ess - 1 / K, 0)) if K > 1 else np.full(lw.shape[1], np.nan)
    return sign * (lse - math.log(K)), stderr


# -- one compiled run of temperatures -------------------------------------------------------------------------
def _f_and_grad(model, x, p0_loc, p0_scale, start: str):
    """z → (f(z), ∇f(z)) with f(z) = log p(x, z) − log p0(z), the log-density that β weights: one gradient
    evaluation. From the prior f is just log p(x|z): the prior's two terms cancel exactly, so they are not computed."""
    p0, prior = tfd.MultivariateNormalDiag(p0_loc, p0_scale), model.prior()

    def f(z):
        out = model.likelihood(z).log_prob(x)
        return out if start == "prior" else out + prior.log_prob(z) - p0.log_prob(z)
    return lambda z: tfp.math.value_and_gradient(f, z)


def _anneal_fn(model, start: str, num_leapfrog: int, num_chains: int, jit_compile: bool):
    """(x, p0_loc, p0_scale, state, betas, n, fixed_log_eps, key, settings) → (state after n more
    temperatures, the log step used at each).

    Temperature i of the call moves z with one HMC move that leaves π_{β_i} invariant (hmc.move, which
    carries f and ∇f, so a temperature costs num_leapfrog gradient evaluations), then adds
    (β_{i+1} − β_i) f(z) to log w. With pilot chains (any beyond num_chains) the step adapts; without,
    it is fixed_log_eps[i]."""
    def run(x, p0_loc, p0_scale, state, betas, n, fixed_log_eps, key, target_accept, rate, jitter):
        f_and_grad = _f_and_grad(model, x, p0_loc, p0_scale, start)
        C, B = state[0].shape[0], state[0].shape[1]

        def body(i, z, fz, gf, log_w, log_eps, accept, used):
            beta = tf.cast(betas[i], tf.float32)
            log_eps = log_eps if num_chains < C else fixed_log_eps[i]
            seed_jitter, seed_hmc = tf.unstack(tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(key, i), 2))
            # Each chain's step is jittered by a fresh factor in [1 − j, 1 + j] at each temperature: a fixed
            # trajectory length can resonate with a posterior's width (and come back to where it began, or
            # to its mirror image, which leaves f unchanged); a random one cannot. The draw ignores the
            # chain's state, so each move still leaves π_t invariant.
            size = tf.exp(log_eps)[None, :, None] * p0_scale[None]
            size *= 1 + jitter * tf.random.stateless_uniform([C, B, 1], seed_jitter, -1.0, 1.0)
            z, fz, gf, p = hmc.move(z, fz, gf, beta, size, num_leapfrog, f_and_grad, p0_loc, p0_scale, seed_hmc)
            used = used.write(i, log_eps)
            if num_chains < C:  # only the pilot chains steer the step: log ε += rate · (their acceptance − target)
                log_eps += rate * (tf.reduce_mean(p[num_chains:], 0) - target_accept)
            accept += tf.reduce_mean(p[:num_chains], 0)
            log_w += tf.cast(betas[i + 1] - betas[i], tf.float64) * tf.cast(fz, tf.float64)
            return i + 1, z, fz, gf, log_w, log_eps, accept, used

        used = tf.TensorArray(tf.float32, size=fixed_log_eps.shape[0], element_shape=[B])
        out = tf.while_loop(lambda i, *_: i < n, body, (tf.constant(0), *state, used))
        return tuple(out[1:-1]), out[-1].stack()

    cache = model.__dict__.setdefault("_ais_fns", {})  # one compiled function per model and setting
    key = (start, num_leapfrog, num_chains, jit_compile)
    if key not in cache:
        cache[key] = tf.function(run, jit_compile=jit_compile)
    return cache[key]


def _start(model, x, start: str, reverse: bool, z_start, C: int, key, step_size):
    """p0's (loc, scale) per image, the chains' first states, and the first log step size.

    Forward chains start at exact draws from p0 = π_0; reverse chains at the given posterior draws z_start,
    (B, d) shared by every chain or (C, B, d). The first step (in units of p0's scale) is `step_size`, or
    0.5 at p0 itself and 0.5 · q's geometric-mean scale relative to p0's when starting at the posterior."""
    B, d = x.shape[0], model.config.latent_dim
    q = model.posterior(x)
    loc, scale = (tf.zeros([B, d]), tf.ones([B, d])) if start == "prior" else (q.loc, q.stddev())
    if reverse:
        z = tf.broadcast_to(tf.convert_to_tensor(z_start, tf.float32), [C, B, d])
    else:
        z = loc + scale * tf.random.stateless_normal([C, B, d], tf.random.experimental.stateless_fold_in(key, 0))
    if step_size is None:
        ratio = tf.exp(tf.reduce_mean(tf.math.log(q.stddev() / scale), -1)) if reverse else tf.ones([B])
        step_size = 0.5 * tf.minimum(ratio, 1.0)
    return loc, scale, z, tf.math.log(tf.broadcast_to(tf.cast(step_size, tf.float32), [B]))


def _pad(a: np.ndarray, length: int) -> np.ndarray:
    """a along axis 0, its last row repeated to `length`: every call has one shape, so one compile."""
    return np.pad(a, [(0, length - len(a))] + [(0, 0)] * (a.ndim - 1), mode="edge")


def _anneal_batch(model, x, betas, s: dict, z_start, step_sizes, key, on_chunk):
    """log w (C, B) float64 of every chain (pilots last), the counted chains' mean acceptance (B,) and the
    step used at each move (T − 1, B) for one batch of images, `steps_per_call` temperatures per call, and the
    counted chains' last states (K, B, d)."""
    C, T, chunk = s["num_chains"] + s["num_pilot_chains"], len(betas) - 1, s["steps_per_call"]
    x = tf.convert_to_tensor(x, tf.float32)
    loc, scale, z, log_eps = _start(model, x, s["start"], s["reverse"], z_start, C, key, s["step_size"])
    fixed = np.broadcast_to(np.log(step_sizes) if step_sizes is not None else log_eps.numpy(), (T - 1, len(x)))
    fz, gf = _f_and_grad(model, x, loc, scale, s["start"])(z)
    log_w = tf.cast(betas[1] - betas[0], tf.float64) * tf.cast(fz, tf.float64)
    state = (z, fz, gf, log_w, log_eps, tf.zeros([x.shape[0]]))
    fn = _anneal_fn(model, s["start"], s["num_leapfrog"], s["num_chains"], s["jit_compile"])
    used, knobs = [], [tf.constant(s[k], tf.float32) for k in ("target_accept", "adapt_rate", "jitter")]
    for t0 in range(1, T, chunk):  # temperatures t0 … t0 + n − 1, each followed by the increment to t + 1
        n = min(chunk, T - t0)
        state, eps = fn(x, loc, scale, state, tf.constant(_pad(betas[t0:t0 + n + 1], chunk + 1)), tf.constant(n),
                        tf.constant(_pad(fixed[t0 - 1:t0 - 1 + n], chunk), tf.float32),
                        tf.random.experimental.stateless_fold_in(key, t0), *knobs)
        used.append(np.exp(eps.numpy()[:n]))
        on_chunk(n)
    steps = np.concatenate(used) if used else np.zeros((0, len(x)), np.float32)
    return state[3].numpy(), state[5].numpy() / max(T - 1, 1), steps, state[0].numpy()[:s["num_chains"]]


def ais(model, x, num_steps: int = 500, num_chains: int = 16, num_leapfrog: int = 10, start: str = "prior",
        schedule: str | np.ndarray = "sigmoid", seed: int = 0, reverse: bool = False, z_start=None,
        num_pilot_chains: int = 2, step_size=None, step_sizes=None, target_accept: float = 0.65,
        adapt_rate: float = 0.3, jitter: float = 0.5, images_per_batch: int | None = None,
        steps_per_call: int = 50, progress: Callable[[int, int], None] | None = None,
        should_stop: threading.Event | Callable[[], bool] | None = None,
        jit_compile: bool | None = None) -> AISResult:
    """AIS estimate of log p(x) for each image x (N, pixels): `num_chains` chains per image, annealed from
    p0 = the prior (start="prior") or q(z|x) (start="posterior") over `num_steps` temperatures of
    `schedule` (a name, or the T + 1 values β_0 = 0 … β_T = 1 themselves), one HMC step of `num_leapfrog`
    leapfrog steps at each. With reverse=True it anneals from β = 1 to 0 starting at the exact posterior
    draws z_start ((N, d) shared by all chains, or (chains + pilots, N, d)): log_px is then an upper bound.

    The step starts at `step_size` (a number) and follows `num_pilot_chains` pilot chains (see the module docstring);
    `step_sizes` (T − 1, N), e.g. a forward run's reversed, fixes it per move instead and runs no pilots.
    Reverse pilots start at z_start too, so the step depends on the chains' start: only fixed step_sizes
    (as bdmc passes) keep a reverse bound exact.

    The standard error is the delta method across the chains, √(1/ESS − 1/K): it measures the spread the
    chains show. It is unreliable when the ESS is a handful (one or two chains carry the estimate: the
    weights' variance is then itself badly estimated, and heavy-tailed log weights make it too small), and
    blind to a failure every chain shares (all chains missing a posterior mode gives a small SE and a
    wrong answer). Reverse chains started at one shared draw are not independent: their SE is optimistic.

    Images go `images_per_batch` at a time (default: in batches of a power of two images, chains × images ≤ 2048,
    so that few shapes are ever compiled) and temperatures
    `steps_per_call` per compiled call; between calls `progress(done, total)` is told the image-temperatures
    done, and a set `should_stop` raises Cancelled. The noise is tf's stateless RNG keyed by (seed, first
    image of the batch, direction, temperature): the same seed and batching give the same numbers. The calls
    are compiled with XLA unless jit_compile says otherwise or the model is convolutional (networks.xla_ok)."""
    betas = _check(start, reverse, z_start, num_steps, schedule)
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty (N, pixels) array; got shape {x.shape}")
    if step_sizes is not None and np.shape(step_sizes) != (len(betas) - 2, len(x)):
        raise ValueError(f"step_sizes must be (num_steps − 1, images) = {(len(betas) - 2, len(x))}")
    N, K, P, T = len(x), int(num_chains), 0 if step_sizes is not None else int(num_pilot_chains), len(betas) - 1
    should_stop = should_stop.is_set if isinstance(should_stop, threading.Event) else (should_stop or (lambda: False))
    sizes = (even_parts(N, images_per_batch) if images_per_batch
             else power_parts(N, max(1, ROWS_PER_CALL // (K + P))))
    settings = dict(num_chains=K, num_pilot_chains=P, num_leapfrog=int(num_leapfrog), start=start, reverse=reverse,
                    step_size=step_size, target_accept=target_accept, adapt_rate=adapt_rate, jitter=jitter,
                    steps_per_call=int(steps_per_call),
                    jit_compile=xla_ok(model.config) if jit_compile is None else bool(jit_compile))
    done, t0, out = [0], time.perf_counter(), []

    def on_chunk(n, b):
        done[0] += n * b
        if progress:
            progress(done[0], N * max(T - 1, 1))
        if should_stop():
            raise Cancelled("AIS stopped")

    for i, batch in spans(sizes):
        if should_stop():
            raise Cancelled("AIS stopped")
        zb = None if z_start is None else np.asarray(z_start, np.float32)[..., i:i + batch, :]
        steps = None if step_sizes is None else np.asarray(step_sizes, np.float32)[:, i:i + batch]
        key = tf.random.experimental.stateless_fold_in(tf.constant([int(seed) % 2**31, i], tf.int32), int(reverse))
        out.append(_anneal_batch(model, x[i:i + batch], betas, settings, zb, steps, key,
                                 lambda n, b=batch: on_chunk(n, b)))
    lw = np.concatenate([o[0][:K] for o in out], 1) * (-1 if reverse else 1)  # each chain's estimate of log p(x)
    grads = N * (K + P) * (1 + (T - 1) * int(num_leapfrog))  # one at z_0, then num_leapfrog per move
    return AISResult(*_summarise(lw, reverse), lw, np.concatenate([o[1] for o in out]),
                     np.concatenate([o[2] for o in out], 1), T, K, int(num_leapfrog), start,
                     schedule if isinstance(schedule, str) else "given", reverse, time.perf_counter() - t0, int(grads),
                     np.concatenate([o[3] for o in out], 1))


def _check(start, reverse, z_start, num_steps, schedule) -> np.ndarray:
    """The β path to follow (reversed for a reverse run), after checking the arguments."""
    if start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(STARTS)}; got {start!r}")
    if reverse and z_start is None:
        raise ValueError("reverse AIS starts at exact posterior draws: pass z_start")
    betas = np.asarray(beta_schedule(num_steps, schedule) if isinstance(schedule, str) else schedule, np.float64)
    if betas.ndim != 1 or len(betas) < 2 or betas[0] != 0 or betas[-1] != 1 or np.any(np.diff(betas) < 0):
        raise ValueError("a β schedule must rise from 0 to 1")
    return betas[::-1].copy() if reverse else betas


# -- bidirectional Monte Carlo ----------------------------------------------------------------------------------
def simulate(model, n: int, seed: int = 0):
    """n images from the model itself: z ~ p(z), x ~ p(x|z) (Bernoulli pixels drawn as 0/1, Gaussian ones with
    their noise). Each z is then an exact draw from its image's posterior p(z|x). Returns (x, z) as float32."""
    key = tf.constant([int(seed) % 2**31, 7], tf.int32)
    z = model.prior().sample(int(n), seed=tf.random.experimental.stateless_fold_in(key, 0))
    x = model.likelihood(z).sample(seed=tf.random.experimental.stateless_fold_in(key, 1))
    return np.asarray(x, np.float32), np.asarray(z, np.float32)


@dataclass
class BDMCResult:
    """Forward AIS (a stochastic lower bound on log p(x)) and reverse AIS from the simulating z (an upper
    bound) on the same simulated images: log p(x) lies between, up to Monte-Carlo error."""
    x: np.ndarray  # (n, pixels) the simulated images
    z: np.ndarray  # (n, d) the z each was drawn from
    lower: AISResult
    upper: AISResult

    @property
    def width(self) -> np.ndarray:
        """(n,) upper − lower: a bound on either bound's error; it shrinks as num_steps grows."""
        return self.upper.log_px - self.lower.log_px

    def summary(self) -> dict:
        return {"num_steps": self.lower.num_steps, "num_images": len(self.x),
                "lower_mean": float(np.mean(self.lower.log_px)), "upper_mean": float(np.mean(self.upper.log_px)),
                "width_mean": float(np.mean(self.width)),
                "lower_mc_stderr": self.lower.summary()["mc_stderr"],
                "upper_mc_stderr": self.upper.summary()["mc_stderr"],
                "seconds": self.lower.seconds + self.upper.seconds}


def bdmc(model, n: int = 16, num_steps: int = 500, num_chains: int = 16, seed: int = 0, data=None,
         progress: Callable[[int, int], None] | None = None, **ais_kw) -> BDMCResult:
    """BDMC (Grosse et al. 2015) on n images simulated from the model (or on `data` = (x, z) from simulate):
    forward AIS from p0, then reverse AIS from each image's simulating z with the forward run's step sizes
    reversed. Those depend on x and the forward run's own noise only, never on z, so the reverse weights
    stay exactly unbiased for 1/p(x). progress(done, total) hears the two runs as one."""
    x, z = simulate(model, n, seed) if data is None else data
    def half(k):  # the forward run is the first half of the work, the reverse run the second
        return None if progress is None else (lambda done, total: progress(k * total + done, 2 * total))
    lower = ais(model, x, num_steps=num_steps, num_chains=num_chains, seed=seed, progress=half(0), **ais_kw)
    upper = ais(model, x, num_steps=num_steps, num_chains=num_chains, seed=seed, reverse=True, z_start=z,
                step_sizes=lower.step_sizes[::-1], progress=half(1), **ais_kw)
    return BDMCResult(x, z, lower, upper)


def bdmc_sweep(model, n: int = 16, steps=(10, 100, 1000), num_chains: int = 16, seed: int = 0,
               **ais_kw) -> list[BDMCResult]:
    """bdmc at each num_steps in `steps`, all on the same simulated images, so the widths compare."""
    data = simulate(model, n, seed)
    return [bdmc(model, num_steps=int(t), num_chains=num_chains, seed=seed, data=data, **ais_kw) for t in steps]
