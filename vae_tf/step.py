"""One compiled training call: its random draws in plain TF, then its steps in one XLA program.

Each call gathers its steps' batches from the uint8 training set (on the device once)
and, for a Bernoulli likelihood, binarizes them afresh (dynamic binarization). Every
draw is stateless and keyed by (seed, step). The draws and the binarization are made
outside XLA (whose RNG gives other numbers for the same seed), so the fast and the
plain path train on the very same bits and ε.

    loss = −E_q[log p(x|z)] + β_t · KL(q(z|x) ‖ p(z))            (objective "elbo")
    loss = −log (1/k) Σ_i p(x, z_i) / q(z_i|x),  z_i ~ q(z|x)     (objective "iwae")

with a learned Gaussian σ set to each batch's closed-form optimum (loss_optimal_sigma, the σ-VAE).
"""
from __future__ import annotations

import math
import tensorflow as tf
import tensorflow_probability as tfp

from . import networks
from .config import Config
from .model import SIGMA_FLOOR

tfd = tfp.distributions

STEPS_PER_CALL = 50  # at most: Python's dispatch is paid once a call, so more steps a call cost less of it
CALL_FLOPS = 5e10  # fewer steps a call when steps are big, so that a stop request lands soon


def step_seeds(base_seed, step, n: int):
    """n independent stateless seeds (int32, as TFP wants them) for one step: a pure function of (seed, step)."""
    return tf.random.experimental.stateless_split(
        tf.random.experimental.stateless_fold_in(base_seed, tf.cast(step, tf.int32)), n)


def default_steps_per_call(config: Config, num_pixels: int, image_shape=None) -> int:
    """Steps a call: ~CALL_FLOPS of matmuls and convolutions (a step ≈ 3 × the forward pass), between 1 and
    STEPS_PER_CALL. image_shape (H, W) matters to conv networks only."""
    enc, dec = networks.forward_macs(config, num_pixels, image_shape)
    macs = enc + config.mc_samples * dec
    return max(1, min(STEPS_PER_CALL, int(CALL_FLOPS // (6 * config.batch_size * macs))))


def compile_draws(config: Config, x_train: tf.Tensor, num_pixels: int, steps_per_call: int):
    """draws(idx (n, B), step0) → the call's pixels (spc, B, D) uint8, binarized for a Bernoulli
    likelihood, and ε (spc, S, B, d), zero-padded to spc steps so that the short last call of an
    epoch reuses the compiled program. Plain TF, outside XLA: XLA's RNG gives other numbers for the
    same seed (and XLA may compute x/255 another way), so every path trains on the same bits and ε."""
    cfg, spc = config, steps_per_call
    B, D, S, d = cfg.batch_size, num_pixels, cfg.mc_samples, cfg.latent_dim
    bernoulli = cfg.likelihood == "bernoulli"
    base_seed = tf.constant([cfg.seed, 7919], tf.int32)

    def step_draws(step):
        """One step's binarization uniforms and the ε of z = μ + s ⊙ ε: a pure function of (seed, step)."""
        seeds = step_seeds(base_seed, step, 2)
        u = tf.random.stateless_uniform([B, D] if bernoulli else [B, 0], seeds[0])
        return u, tf.random.stateless_normal([S, B, d], seeds[1])

    @tf.function
    def draws(idx, step0):
        n = tf.shape(idx)[0]
        steps = step0 + tf.range(n, dtype=tf.int64)
        u, eps = tf.map_fn(step_draws, steps, fn_output_signature=(tf.float32, tf.float32))
        x = tf.gather(x_train, idx)
        if bernoulli:  # dynamic binarization: P(pixel = 1) = grey level, new bits every step
            x = tf.cast(u < tf.cast(x, tf.float32) / 255.0, tf.uint8)
        pad = lambda t: tf.pad(t, [[0, spc - n]] + [[0, 0]] * (t.shape.rank - 1))  # noqa: E731
        return pad(x), pad(eps)

    return draws


def compile_run_steps(model, optimizer, strategy: tf.distribute.Strategy, steps_per_call: int,
                      jit_compile: bool):
    """run_steps(x, eps, n, kl_weight): n of the spc padded steps in one call (XLA on one device) →
    (spc, 3) loss, recon, kl, rows from n on zero. n is a tensor: every call runs the same program."""
    opt, spc = optimizer, steps_per_call
    bernoulli, replicas = model.config.likelihood == "bernoulli", strategy.num_replicas_in_sync
    # a learned σ is set in closed form (loss_optimal_sigma), not moved by Adam
    variables = [v for v in model.trainable_variables if v is not model.raw_sigma]

    def train_step(x_uint8, eps, kl_weight):
        x = tf.cast(x_uint8, tf.float32)
        if not bernoulli:  # grey levels in [0, 1]
            x = x / 255.0
        with tf.GradientTape() as tape:
            loss_, recon, kl = loss(model, x, eps, kl_weight)
            scaled = loss_ / replicas
        grads = tape.gradient(scaled, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return tf.stack([loss_, tf.reduce_mean(recon), tf.reduce_mean(kl)])

    # Several steps per call: Python and dispatch overhead is paid once per call, and XLA fuses
    # the elementwise ops of each step (likelihood, KL, ReLU, Adam) around its matmuls.
    @tf.function(jit_compile=jit_compile)
    def run_steps(x, eps, n, kl_weight):
        out = tf.zeros([spc, 3])
        for i in tf.range(n):
            out = tf.tensor_scatter_nd_update(out, [[i]], train_step(x[i], eps[i], kl_weight)[None])
        return out

    @tf.function
    def run_steps_distributed(x, eps, n, kl_weight):
        """Each replica takes its slice of every batch; the optimizer all-reduces the gradients."""
        def shard(t, axis):
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.split(t, replicas, axis=axis)[ctx.replica_id_in_sync_group])
        out = tf.zeros([spc, 3])
        for i in tf.range(n):
            per = strategy.run(train_step, args=(shard(x[i], 0), shard(eps[i], 1), kl_weight))
            row = strategy.reduce("MEAN", per, axis=None)
            out = tf.tensor_scatter_nd_update(out, [[i]], row[None])
        return out

    return run_steps if replicas == 1 else run_steps_distributed


def loss(model, x, eps, kl_weight):
    """Mean over the batch of the loss, and the per-image recon and KL terms it came from."""
    cfg = model.config
    if cfg.learned_sigma:
        return loss_optimal_sigma(model, x, eps, kl_weight)
    if cfg.objective == "iwae":
        q = model.posterior(x)
        z = q.bijector.forward(eps)  # (k, N, d)
        recon, kl = model.likelihood(z).log_prob(x), q.log_prob(z) - model.prior().log_prob(z)
        bound = tf.reduce_logsumexp(recon - kl, 0) - math.log(cfg.mc_samples)  # log w = recon − kl, per draw
        return -tf.reduce_mean(bound), tf.reduce_mean(recon, 0), tf.reduce_mean(kl, 0)
    recon, kl = model.elbo_terms_from_noise(x, eps)
    return -tf.reduce_mean(recon - kl_weight * kl), recon, kl


def optimal_sigma(x, mean):
    """σ* = √(mean of (x − f(z))² over the draws, images and pixels): the σ that maximises this batch's
    Σ log N(x; f(z), σ²I) in closed form, since ∂/∂σ [−‖x − f‖²/(2σ²) − D log σ] = 0 at σ² = ‖x − f‖²/D."""
    return tf.maximum(tf.sqrt(tf.reduce_mean(tf.square(x - mean))), SIGMA_FLOOR)


def loss_optimal_sigma(model, x, eps, kl_weight):
    """loss() for a learned σ, the σ-VAE way (Rybkin, Daniilidis & Levine 2021): each step's likelihood uses its
    batch's optimal σ* instead of a σ that Adam moves a step size at a time. Its gradient through σ* is zero
    for the ELBO (σ* maximises the batch's reconstruction term, and the KL has no σ), so σ* is held fixed;
    the model's own σ is set to the training images' σ* at each epoch's end (Trainer.set_optimal_sigma)."""
    q = model.posterior(x)
    z = q.bijector.forward(eps)  # (S, N, d)
    mean = model.likelihood(z).mean()  # f(z), (S, N, D)
    sigma = tf.stop_gradient(optimal_sigma(x, mean))
    recon = tfd.Independent(tfd.Normal(loc=mean, scale=sigma), reinterpreted_batch_ndims=1).log_prob(x)
    if model.config.objective == "iwae":
        kl = q.log_prob(z) - model.prior().log_prob(z)
        bound = tf.reduce_logsumexp(recon - kl, 0) - math.log(model.config.mc_samples)
        return -tf.reduce_mean(bound), tf.reduce_mean(recon, 0), tf.reduce_mean(kl, 0)
    recon, kl = tf.reduce_mean(recon, 0), tfd.kl_divergence(q, model.prior())
    return -tf.reduce_mean(recon - kl_weight * kl), recon, kl
