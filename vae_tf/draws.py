"""The draws behind every estimate: z = loc + scale·ε from a proposal r(z|x), and the two log terms

    log p(x|z)   and   log r(z|x) − log p(z),      so that   log w = log p(x|z) − (log r(z|x) − log p(z)),

in compiled calls of at most ROWS_PER_CALL decoder rows (samples × images), so that K × N draws never
sit in memory at once. Each image's standard-normal ε are keyed by (seed, image index): results do not
depend on how images are batched or samples chunked, and a longer run extends a shorter one.
"""
from __future__ import annotations

import collections
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .networks import xla_ok

tfd = tfp.distributions

# decoder rows (samples × images) per compiled call: big enough matmuls, ~13 MB of logits. What XLA keeps for each
# compiled shape, for the life of the process, grows with it, and twice as many rows were no faster
ROWS_PER_CALL = 4096
CALLS_AT_ONCE = 2  # compiled calls in flight at a time (threads; TensorFlow releases the GIL)


class Cancelled(Exception):
    """Raised inside an estimate when its stop request is set."""


def compiled(model, key: str, build: Callable):
    """build(), made once per model and kept on it: the model's compiled functions, by key."""
    cache = model.__dict__.setdefault("_compiled_fns", {})
    if key not in cache:
        cache[key] = build()
    return cache[key]


def draw_fn(model):
    """(x (B,D), loc (B,d), scale, eps (c,B,d)) → log p(x|z) and log r(z|x) − log p(z), each (c,B), for
    z = loc + scale·eps, a draw from the proposal r. scale is (B,d) for a diagonal r = N(loc, diag scale²)
    or (B,d,d) for r = N(loc, LLᵀ) with L lower-triangular. The two parts are returned apart so that
    log w = log p(x|z) − (log r − log p(z)) is summed in float64: log p(x|z) can be in the thousands.

    The diagonal case (q itself, the prior) is compiled with XLA, which fuses the likelihood's
    elementwise log-density and its sum over pixels into one pass over the decoder's output; the noise
    comes from numpy, so XLA's own RNG plays no part and results match the plain path up to round-off.
    Conv networks are left to TensorFlow's own kernels (networks.xla_ok)."""
    def diagonal(x, loc, scale, eps):
        proposal = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
        z = proposal.bijector.forward(eps)
        return model.likelihood(z).log_prob(x), proposal.log_prob(z) - model.prior().log_prob(z)

    def full(x, loc, scale_tril, eps):
        proposal = tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale_tril)
        z = proposal.bijector.forward(eps)
        return model.likelihood(z).log_prob(x), proposal.log_prob(z) - model.prior().log_prob(z)

    diag_fn = compiled(model, "draw_diag", lambda: tf.function(diagonal, jit_compile=xla_ok(model.config)))
    tril_fn = compiled(model, "draw_tril", lambda: tf.function(full, reduce_retracing=True))
    return lambda x, loc, scale, eps: (tril_fn if scale.shape.rank == 3 else diag_fn)(x, loc, scale, eps)


def q_fn(model):
    """x → q(z|x)'s (μ, s) and the exact KL(q ‖ p(z)) = ½ Σ (μ² + s² − log s² − 1), compiled: eagerly,
    building the TFP objects on every call would dominate small image batches."""
    def fn(x):
        q = model.posterior(x)
        return q.loc, q.stddev(), tfd.kl_divergence(q, model.prior())
    return compiled(model, "q", lambda: tf.function(fn, reduce_retracing=True))


def image_noise(seed: int, image_index: int, k: int, d: int) -> np.ndarray:
    """The K standard-normal draws of one image: keyed by (seed, image index), so results do not
    depend on how images are batched or samples chunked, and the first k of K draws are the same for
    every K ≥ k (a longer run extends a shorter one). elbo() and estimate_log_px() share them."""
    return np.random.default_rng([seed, image_index]).standard_normal((k, d), dtype=np.float32)


def image_batches(n: int, k: int, d: int, max_weights: int, rows_per_call: int) -> list[int]:
    """Images per batch, in turn (power_parts): the batch's noise and weights (≈ K·B·(d + 6) floats) stay under
    max_weights, and a batch is at most 16 compiled calls, so that progress is reported every few seconds at worst."""
    return power_parts(n, max(1, min(n, max_weights // (k * (d + 6)), 16 * rows_per_call // k)))


def even_part(total: int, most: int) -> int:
    """A part size ≤ most for cutting `total` items into parts: the largest that divides total evenly if
    one is at least most/2, else most. Equal parts mean one shape, so one XLA compile, and no padding
    (K = 5000 goes in chunks of 250, not 327 + a last chunk of 95)."""
    most = max(1, min(total, most))
    for size in range(most, (most + 1) // 2 - 1, -1):
        if total % size == 0:
            return size
    return most


def even_parts(total: int, most: int) -> list[int]:
    """Parts of even_part(total, most), laid end to end: equal, the last one shorter where they do not divide total."""
    size = even_part(total, most)
    return [min(size, total - i) for i in range(0, total, size)]


def power_parts(total: int, most: int) -> list[int]:
    """Part sizes that add up to `total`, each a power of two ≤ most, largest first (100, 113 → 64, 32, 4).

    Every new batch shape is a new compiled program that the process keeps for its life, so a server asked for
    every image count from 2 to 100 would keep a hundred of them (README, Resources). Powers of two keep it to a
    handful per setting; the small parts cost little, as a batch's time is nearly proportional to its images."""
    top = 1 << (max(1, most).bit_length() - 1)
    rest = total % top
    return [top] * (total // top) + [1 << b for b in range(rest.bit_length() - 1, -1, -1) if rest >> b & 1]


def spans(sizes: list[int]) -> list[tuple[int, int]]:
    """(first index, size) of each part laid end to end."""
    return list(zip(np.cumsum([0, *sizes[:-1]]).tolist(), sizes, strict=True))


def noise_chunks(seed: int, first_index: int, n: int, k: int, d: int, chunk: int):
    """image_noise's draws for n images, `chunk` samples at a time: (c, n, d) arrays. Each image's
    generator runs on from chunk to chunk, so laid end to end they are image_noise(seed, first_index + i,
    k, d) exactly, whatever the chunk size."""
    gens = [np.random.default_rng([seed, first_index + i]) for i in range(n)]
    for s in range(0, k, chunk):
        out = np.empty((min(chunk, k - s), n, d), np.float32)
        for i, g in enumerate(gens):
            out[:, i] = g.standard_normal((len(out), d), dtype=np.float32)
        yield out


def log_terms(model, x, k: int, params, seed: int, first_index: int, rows_per_call: int, should_stop=None):
    """log p(x|z) and log r(z|x) − log p(z), float64 (K, N), K draws per image from the proposal `params`.
    Decoder outputs exist one chunk (≤ rows_per_call rows of samples × images) at a time — two chunks,
    as two compiled calls run at once: one XLA call runs its ops one by one and leaves part of a
    multi-core CPU idle, two fill it. The main thread draws the next chunk's noise meanwhile."""
    x = tf.convert_to_tensor(x, tf.float32)
    n, d = x.shape[0], model.config.latent_dim
    loc, scale = params
    chunk = even_part(k, rows_per_call // n)
    fn = draw_fn(model)
    ll, rp = np.empty((k, n)), np.empty((k, n))

    def run(s, eps):
        a, b = fn(x, loc, scale, tf.constant(eps))
        ll[s:s + len(eps)], rp[s:s + len(eps)] = a.numpy(), b.numpy()

    with ThreadPoolExecutor(CALLS_AT_ONCE, thread_name_prefix="vae_tf-draws") as pool:
        running = collections.deque()
        for s, eps in zip(range(0, k, chunk), noise_chunks(seed, first_index, n, k, d, chunk), strict=True):
            if should_stop is not None and should_stop():
                raise Cancelled("stopped during a batch")
            if len(running) == CALLS_AT_ONCE:
                running.popleft().result()
            running.append(pool.submit(run, s, eps))
        for call in running:
            call.result()
    return ll, rp


def log_terms_mirrored(model, x, k: int, params, seed: int, first_index: int, rows_per_call: int, should_stop,
                    strategy: tf.distribute.Strategy):
    """log_terms with the images split over the strategy's replicas (a model built in its scope has a copy
    of the weights on each device). Each image's draws are keyed by its index, so the result is the
    one-device result, computed in parallel."""
    n, d, replicas = len(x), model.config.latent_dim, strategy.num_replicas_in_sync
    parts = [p for p in np.array_split(np.arange(n), replicas)]
    loc, scale = (np.asarray(p, np.float32) for p in params)
    eps = np.empty((k, n, d), np.float32)
    for i in range(n):
        eps[:, i] = image_noise(seed, first_index + i, k, d)
    chunk = even_part(k, rows_per_call // max(len(p) for p in parts))
    per_replica = lambda arrays: strategy.experimental_distribute_values_from_function(  # noqa: E731
        lambda ctx: tf.constant(arrays[ctx.replica_id_in_sync_group]))
    xs, locs, scales = (per_replica([a[p] for p in parts]) for a in (np.asarray(x, np.float32), loc, scale))
    fn = draw_fn(model)
    ll, rp = np.empty((k, n)), np.empty((k, n))
    for s in range(0, k, chunk):
        if should_stop is not None and should_stop():
            raise Cancelled("stopped during a batch")
        out = strategy.run(fn, args=(xs, locs, scales, per_replica([eps[s:s + chunk, p] for p in parts])))
        for p, a, b in zip(parts, *(strategy.experimental_local_results(o) for o in out), strict=True):
            ll[s:s + chunk, p], rp[s:s + chunk, p] = a.numpy(), b.numpy()
    return ll, rp
