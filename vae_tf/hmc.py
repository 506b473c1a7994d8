"""One Hamiltonian Monte Carlo move on an annealing path: π_β(z) ∝ p0(z) · exp(β f(z)), p0 = N(loc, diag scale²).

An annealing chain needs f(z) and ∇f(z) at every state it visits: for its weight increments, and for the next
move's first half-step. The leapfrog integrator computes them at its last position anyway, so carrying them
through the move (the proposal's if accepted, the old ones if not) makes a move of L leapfrog steps cost
exactly L evaluations of f and ∇f; log p0 and its gradient are analytic and cost next to nothing.

The move: momentum ρ ~ N(0, I), then the leapfrog integrator with a per-dimension step h (unit mass: h acts as
a diagonal preconditioner),

    ρ ← ρ + (h/2) ∇log π(z);   L − 1 times: z ← z + h ρ, ρ ← ρ + h ∇log π(z);   z ← z + h ρ, ρ ← ρ + (h/2) ∇log π(z)

and the end point (z', ρ') accepted with probability min(1, exp(H(z, ρ) − H(z', ρ'))), H = −log π + ½|ρ|².
The integrator is reversible and preserves volume, so the move leaves π_β invariant (Neal 2011, "MCMC using
Hamiltonian dynamics"). A proposal whose H is not finite is rejected.
"""
from __future__ import annotations

import tensorflow as tf


def log_p0(z, loc, scale):
    """log p0(z) up to its constant (which cancels in every acceptance ratio), and its gradient."""
    u = (z - loc) / scale
    return -0.5 * tf.reduce_sum(u * u, -1), -u / scale


def move(z, fz, gf, beta, h, num_leapfrog: int, f_and_grad, loc, scale, seed):
    """One HMC move of chains z (C, B, d) leaving π_β invariant, with f(z), ∇f(z) carried in and out.

    h (C, B, d) is each chain's step per dimension; f_and_grad(z) → (f (C, B), ∇f (C, B, d)). Returns the new
    (z, f, ∇f) and each chain's acceptance probability (C, B), 0 for a proposal whose energy is not finite."""
    seed_rho, seed_u = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    rho = tf.random.stateless_normal(tf.shape(z), seed_rho)

    def log_pi(z, f, g):  # log π_β up to its constant, and its gradient
        lp, g0 = log_p0(z, loc, scale)
        return lp + beta * f, g0 + beta * g

    lp, grad = log_pi(z, fz, gf)
    h_start = -lp + 0.5 * tf.reduce_sum(rho * rho, -1)
    r = rho + 0.5 * h * grad

    def leap(i, y, r, f, g):
        y = y + h * r
        f, g = f_and_grad(y)
        return i + 1, y, r + h * log_pi(y, f, g)[1], f, g

    _, y, r, f1, g1 = tf.while_loop(lambda i, *_: i < num_leapfrog - 1, leap, (tf.constant(0), z, r, fz, gf))
    y = y + h * r
    f1, g1 = f_and_grad(y)
    lp1, grad1 = log_pi(y, f1, g1)
    r = r + 0.5 * h * grad1
    log_ratio = h_start - (-lp1 + 0.5 * tf.reduce_sum(r * r, -1))
    log_ratio = tf.where(tf.math.is_finite(log_ratio), log_ratio, -float("inf"))
    accept = tf.math.log(tf.random.stateless_uniform(tf.shape(log_ratio), seed_u)) < log_ratio
    keep = accept[..., None]
    return (tf.where(keep, y, z), tf.where(accept, f1, fz), tf.where(keep, g1, gf),
            tf.exp(tf.minimum(log_ratio, 0.0)))
