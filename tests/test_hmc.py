"""AIS's own HMC move (vae_tf.hmc) against an exact answer and against tfp.mcmc's: on a Gaussian target
π_β(z) ∝ N(z; 0, I) · exp(β f(z)), f a correlated Gaussian's log-density, whose mean and covariance are known in
closed form, chains moved by hmc.move keep π_β's moments; one move accepts as often as tfp.mcmc's
HamiltonianMonteCarlo with the same step and leapfrog steps, from the same states."""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_tf import hmc

C, BETA, H, L = 4000, 0.7, 0.2, 3  # a trajectory of ~1 rad: ~π would reflect the chains, not mix them
M = np.array([1.0, -2.0])
P = np.array([[2.0, 1.2], [1.2, 1.5]])  # f's precision
PREC = np.eye(2) + BETA * P  # π_β's precision and mean, exactly
MEAN = np.linalg.solve(PREC, BETA * P @ M)
COV = np.linalg.inv(PREC)


def f_and_grad(z):
    u = z - tf.constant(M, tf.float32)
    pu = tf.einsum("ij,cbj->cbi", tf.constant(P, tf.float32), u)
    return -0.5 * tf.reduce_sum(u * pu, -1), -pu


def start(seed=0):
    z = tf.random.stateless_normal([C, 1, 2], [seed, 1])
    f, g = f_and_grad(z)
    return z, f, g


def test_moves_keep_the_exact_moments_of_the_target():
    z, f, g = start()
    h = tf.fill([C, 1, 2], H)
    zeros, ones = tf.zeros(2), tf.ones(2)
    for i in range(100):  # from p0 = N(0, I) to π_β, then on it
        z, f, g, _ = hmc.move(z, f, g, BETA, h, L, f_and_grad, zeros, ones, tf.constant([7, i], tf.int64))
    x = z.numpy()[:, 0].astype(np.float64)
    se = np.sqrt(np.diag(COV) / C)
    np.testing.assert_array_less(np.abs(x.mean(0) - MEAN), 5 * se)
    np.testing.assert_allclose(np.cov(x.T), COV, atol=0.1 * np.abs(COV).max())
    f_now, g_now = f_and_grad(z)  # what the move carried out is f and ∇f at the new states
    np.testing.assert_allclose(f.numpy(), f_now.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g.numpy(), g_now.numpy(), rtol=1e-5, atol=1e-5)


def test_one_move_accepts_as_often_as_tfp_mcmc():
    """At a step large enough that many proposals are refused, so that the acceptance rate says something."""
    z, f, g = start(seed=3)
    step = 0.9
    _, _, _, ours = hmc.move(z, f, g, BETA, tf.fill([C, 1, 2], step), L, f_and_grad, tf.zeros(2), tf.ones(2),
                             tf.constant([5, 0], tf.int64))

    def target(z):
        return -0.5 * tf.reduce_sum(z * z, -1) + BETA * f_and_grad(z)[0]

    kernel = tfp.mcmc.HamiltonianMonteCarlo(target, step_size=step, num_leapfrog_steps=L)
    _, results = kernel.one_step(z, kernel.bootstrap_results(z), seed=tf.constant([5, 1], tf.int32))
    theirs = tf.exp(tf.minimum(results.log_accept_ratio, 0.0))
    ours, theirs = float(tf.reduce_mean(ours)), float(tf.reduce_mean(theirs))
    assert 0.2 < theirs < 0.9 and abs(ours - theirs) < 0.03, (ours, theirs)
