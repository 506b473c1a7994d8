"""The estimators against exact answers.

Linear-Gaussian model: x = Wz + b + σε has log p(x) = log N(x; b, WWᵀ + σ²I) and a Gaussian posterior.
2-D latent: log p(x) = log ∬ p(x|z) p(z) dz on a grid. Everything else (IWAE ordering, KL, chunking,
progress and stop) on small trained models.
"""
import math
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from conftest import make_tiny_dataset
from vae_tf import draws, mc_error
from vae_tf import estimators as E
from vae_tf import evaluate as V
from vae_tf import exact as X
from vae_tf.config import Config
from vae_tf.data import Dataset
from vae_tf.model import VAE
from vae_tf.train import Trainer

tfd = tfp.distributions


# -- models ----------------------------------------------------------------------------------------
def linear_gaussian(D, d, sigma, seed=0, scale=0.5):
    """A linear-Gaussian VAE with a chosen W (D, d), b: the dec_out kernel is Wᵀ."""
    model = VAE(Config(latent_dim=d, hidden=(32,), decoder="linear", likelihood="gaussian", sigma=sigma, seed=seed), D)
    rng = np.random.default_rng(seed)
    W = rng.normal(0, scale, (D, d)).astype(np.float32)
    b = rng.normal(0, 0.3, D).astype(np.float32)
    layer = model.decoder.get_layer("dec_out")
    layer.kernel.assign(W.T)
    layer.bias.assign(b)
    return model, W.astype(np.float64), b.astype(np.float64)


def sample_linear(W, b, sigma, n, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, W.shape[1]))
    return (z @ W.T + b + sigma * rng.standard_normal((n, W.shape[0]))).astype(np.float32)


def fit_encoder(model, x, steps=300, batch=256, lr=1e-2):
    """Adam on the ELBO for the encoder only, so that q(z|x) approximates the true posterior."""
    opt, variables = keras.optimizers.Adam(lr), model.encoder.trainable_variables

    @tf.function
    def step(xb, seed):
        with tf.GradientTape() as tape:
            recon, kl = model.elbo_terms(xb, seed, 4)
            loss = -tf.reduce_mean(recon - kl)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    rng = np.random.default_rng(1)
    for i in range(steps):
        step(tf.constant(x[rng.integers(0, len(x), batch)]), tf.constant([3, i], tf.int32))


def train(config, dataset):
    return Trainer(config, dataset).fit().model


@pytest.fixture(scope="module")
def linear():
    """D = 24 pixels, d = 3, σ = 0.5, a non-diagonal true posterior; the encoder fitted to it."""
    model, W, b = linear_gaussian(24, 3, 0.5)
    decoder_before = [v.numpy().copy() for v in model.decoder.trainable_variables]
    fit_encoder(model, sample_linear(W, b, 0.5, 4096, seed=1))
    assert all(np.array_equal(a, v.numpy())
               for a, v in zip(decoder_before, model.decoder.trainable_variables, strict=True))
    return model, W, b, sample_linear(W, b, 0.5, 32, seed=2)


@pytest.fixture(scope="module")
def model2d():
    """A 2-D latent MLP trained briefly on the tiny 8×8 set, with the grid answers for 8 test images."""
    data = make_tiny_dataset()
    model = train(Config(latent_dim=2, hidden=(64,), batch_size=64, epochs=40, learning_rate=3e-3), data)
    x = data.test_images("bernoulli")[:8]
    return model, x, [X.grid_posterior(model, xi) for xi in x]


@pytest.fixture(scope="module")
def model4d(fashion):
    """A 4-D latent MLP trained briefly on 512 Fashion-MNIST images (784 Bernoulli pixels)."""
    f = fashion
    data = Dataset("fashion-512", f.x_train[:512], f.y_train[:512], f.x_test[:32], f.y_test[:32], f.class_names)
    model = train(Config(latent_dim=4, hidden=(64,), batch_size=64, epochs=30, learning_rate=3e-3), data)
    return model, data.test_images("bernoulli")[:16]


# -- the linear-Gaussian model: closed form ----------------------------------------------------------
def test_closed_form_matches_numpy_and_prior_monte_carlo():
    """exact_log_px / exact_posterior against an independent np.linalg computation, and log p(x)
    against a plain Monte-Carlo average of p(x|z) over 400 000 prior draws (D = 4, d = 2)."""
    model, W, b = linear_gaussian(4, 2, 0.7, seed=5, scale=0.8)
    x = sample_linear(W, b, 0.7, 5, seed=6).astype(np.float64)
    C = W @ W.T + float(np.float32(0.7)) ** 2 * np.eye(4)  # the model's σ is a float32
    r = x - b
    direct = -0.5 * (np.einsum("nd,nd->n", r, np.linalg.solve(C, r.T).T) + np.linalg.slogdet(2 * np.pi * C)[1])
    np.testing.assert_allclose(X.exact_log_px(model, x), direct, atol=1e-9)
    # the posterior by conditioning the joint Gaussian of (z, x): a different formula from the module's
    post = X.exact_posterior(model, x)
    np.testing.assert_allclose(post.mean().numpy(), r @ np.linalg.solve(C, W), atol=1e-9)
    np.testing.assert_allclose(post.covariance().numpy()[0], np.eye(2) - W.T @ np.linalg.solve(C, W), atol=1e-9)

    z = np.random.default_rng(7).standard_normal((400_000, 1, 2)).astype(np.float32)
    log_lik = model.likelihood(z).log_prob(x.astype(np.float32)).numpy().astype(np.float64)  # (S, N)
    mc = E.logsumexp(log_lik, 0) - math.log(len(z))
    w = np.exp(log_lik - log_lik.max(0))
    stderr = w.std(0) / w.mean(0) / math.sqrt(len(z))  # delta method
    assert np.all(np.abs(mc - direct) < 4 * stderr + 1e-4), (mc - direct, stderr)


def test_exact_posterior_as_proposal_gives_equal_weights():
    """p(x, z) / p(z|x) = p(x) for every z: every weight equal, ESS = K, and K = 1 is exact."""
    model, W, b = linear_gaussian(20, 3, 0.4, seed=3)
    x = sample_linear(W, b, 0.4, 10, seed=4)
    exact = X.exact_log_px(model, x)
    post = X.exact_posterior(model, x)
    one = E.estimate_log_px(model, x, k=1, proposal=post, max_weights=200)  # several image batches
    np.testing.assert_allclose(one.log_px, exact, atol=1e-4)
    many = E.estimate_log_px(model, x, k=500, proposal=post)
    np.testing.assert_allclose(many.ess, 500, rtol=1e-6)
    np.testing.assert_allclose(many.log_px, exact, atol=1e-4)
    assert one.proposal == "given" and np.all(np.isnan(one.log_px_mc_stderr))  # one draw: no error estimate


def test_pareto_k_small_for_a_close_proposal_and_above_0_7_for_a_lighter_tailed_one():
    """Proposal r = N(posterior mean, (c·L)(c·L)ᵀ) for the exact posterior N(m, LLᵀ): log w = ½(1 − c²)‖ε‖² + const,
    so w has tail index k = 1 − c² whatever the image: c = 0.95 gives k ≈ 0.1, c = 0.3 gives k = 0.91 (lighter
    tails than the target: the variance of w is infinite)."""
    model, W, b = linear_gaussian(20, 3, 0.4, seed=3)
    x = sample_linear(W, b, 0.4, 10, seed=4)
    post = X.exact_posterior(model, x)
    k_hat = {}
    for c in (0.95, 0.3):
        est = E.estimate_log_px(model, x, k=5000, proposal=tfd.MultivariateNormalTriL(post.loc, post.scale_tril * c))
        k_hat[c] = est.pareto_k
        assert est.summary()["unreliable_images"] == int(np.sum(est.pareto_k > 0.7))
        np.testing.assert_array_equal(est.unreliable, est.pareto_k > 0.7)
    print("k̂, c = 0.95:", np.round(k_hat[0.95], 2), "c = 0.3:", np.round(k_hat[0.3], 2))
    assert np.all(k_hat[0.95] < 0.5)
    assert np.mean(k_hat[0.3]) > 0.8 and np.all(k_hat[0.3] > 0.6) and np.sum(k_hat[0.3] > 0.7) >= 8
    # too few draws for a tail fit: no k̂, and no image flagged
    few = E.estimate_log_px(model, x, k=20)
    assert np.all(np.isnan(few.pareto_k)) and few.summary()["unreliable_images"] == 0


def test_importance_sampling_converges_to_closed_form(linear):
    """With the fitted encoder as proposal, |log p̂_K − log p(x)| shrinks with K and is < 0.05 at K = 5000."""
    model, _, _, x = linear
    exact = X.exact_log_px(model, x)
    est = E.estimate_log_px(model, x, k=5000)
    err = {k: float(np.mean(np.abs(E.estimate_log_px(model, x, k=k).log_px - exact))) for k in (10, 100)}
    err[5000] = float(np.mean(np.abs(est.log_px - exact)))
    print("mean |error| by K:", err, "max at 5000:", np.abs(est.log_px - exact).max(), "ESS:", est.ess.mean())
    assert err[10] > err[100] > err[5000]
    assert np.all(np.abs(est.log_px - exact) < 0.05)
    # the bound is below log p(x) on average, and the gap is the KL to a non-diagonal posterior
    assert np.mean(est.elbo) < np.mean(exact) and np.mean(est.log_px) <= np.mean(exact) + 0.01


# -- the 2-D latent: grid integral ------------------------------------------------------------------
def test_grid_against_closed_form_even_for_a_needle_thin_q():
    """On a 2-D linear-Gaussian model the grid's log p(x) is exact_log_px and its KL(q ‖ p(z|x)) is the
    Gaussian KL to exact_posterior: for the untrained encoder (KL of 10–50 nats) and for a q of σ ≈ 0.001,
    far narrower than the posterior grid's spacing."""
    model, W, b = linear_gaussian(16, 2, 0.5, seed=8)
    x = sample_linear(W, b, 0.5, 2, seed=9)
    exact = X.exact_log_px(model, x)
    layer = model.encoder.get_layer("enc_out")
    for raw_scale in (None, -7.0):
        if raw_scale is not None:  # s = softplus(−7) + 1e-4 ≈ 0.001 whatever x is
            kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
            kernel[:, 2:], bias[2:] = 0.0, raw_scale
            layer.kernel.assign(kernel)
            layer.bias.assign(bias)
        q = model.posterior(x)
        q64 = tfd.MultivariateNormalDiag(tf.cast(q.loc, tf.float64), tf.cast(q.stddev(), tf.float64))
        kl = tfd.kl_divergence(q64, X.exact_posterior(model, x)).numpy()
        grids = [X.grid_posterior(model, xi) for xi in x]
        print("scale", q.stddev().numpy()[0], "grid KL", [g.kl_q_posterior for g in grids], "exact KL", kl)
        np.testing.assert_allclose([g.log_px for g in grids], exact, atol=1e-3)
        np.testing.assert_allclose([g.kl_q_posterior for g in grids], kl, atol=1e-3)


def test_quadrature_and_exact_kl_against_closed_form_for_a_1d_latent():
    """A 1-D linear-Gaussian model: quadrature's log p(x) and KL(q ‖ p(z|x)) are the closed form's, and
    exact_kl_q_posterior is log p(x) − ELBO with the ELBO computed from the Gaussian formulas."""
    model, W, b = linear_gaussian(16, 1, 0.5, seed=8)
    x = sample_linear(W, b, 0.5, 3, seed=9)
    lines = [X.quadrature_posterior(model, xi) for xi in x]
    np.testing.assert_allclose([q.log_px for q in lines], X.exact_log_px(model, x), atol=1e-4)
    kl = X.exact_kl_q_posterior(model, x)
    np.testing.assert_allclose([q.kl_q_posterior for q in lines], kl, atol=1e-3)
    assert all(q.converged for q in lines)
    # ELBO = E_q[log N(x; Wz + b, σ²I)] − KL(q ‖ p(z)) in closed form: E‖x − Wz − b‖² = ‖x − Wμ − b‖² + s²‖W‖²
    q = model.posterior(x)
    mu, s = q.loc.numpy().astype(np.float64)[:, 0], q.stddev().numpy().astype(np.float64)[:, 0]
    sigma = float(model.sigma.numpy())
    sq = np.sum((x - np.outer(mu, W[:, 0]) - b) ** 2, 1) + s ** 2 * np.sum(W ** 2)
    elbo = -sq / (2 * sigma ** 2) - 16 * math.log(sigma) - 8 * math.log(2 * math.pi) - 0.5 * (mu ** 2 + s ** 2
                                                                                                   - np.log(s ** 2) - 1)
    np.testing.assert_allclose(kl, X.exact_log_px(model, x) - elbo, atol=1e-3)
    _, out = V.evaluate(model, x, k=100, grid_images=2)
    assert out["grid_method"] == "quadrature" and out["grid_converged"] == 2
    assert out["grid_log_px"] == pytest.approx(np.mean([q.log_px for q in lines[:2]]), abs=1e-9)
    assert out["exact_kl_q_posterior"] == pytest.approx(kl.mean(), abs=1e-9)


@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_2d_importance_sampling_matches_grid(model2d):
    model, x, grids = model2d
    grid = np.array([g.log_px for g in grids])
    est = E.estimate_log_px(model, x, k=5000)
    print("grid − IS(q, 5000):", np.round(grid - est.log_px, 4))
    assert np.mean(np.abs(grid - est.log_px)) < 0.1
    assert all(g.converged for g in grids)
    # the prior as proposal works in two dimensions, given enough draws
    prior = E.estimate_log_px(model, x, k=50_000, proposal="prior")
    print("grid − IS(prior, 50000):", np.round(grid - prior.log_px, 4), "stderr", np.round(prior.log_px_mc_stderr, 4))
    assert np.all(np.abs(grid - prior.log_px) < 4 * prior.log_px_mc_stderr + 0.02)


def test_grid_kl_is_log_px_minus_elbo(model2d):
    """KL(q ‖ p(z|x)) on the grid = grid log p(x) − ELBO, the ELBO from 20 000 draws and the exact KL."""
    model, x, grids = model2d
    ref = E.elbo(model, x, num_samples=20_000, analytic_kl=True, seed=11)
    kl = np.array([g.kl_q_posterior for g in grids])
    implied = np.array([g.log_px for g in grids]) - ref.elbo
    print("grid KL:", np.round(kl, 4), "log p(x) − ELBO:", np.round(implied, 4),
          "ELBO stderr", ref.elbo_mc_stderr.max())
    assert np.all(np.abs(kl - implied) < np.maximum(0.05, 3 * ref.elbo_mc_stderr))
    assert np.all(kl > 0)


def test_grid_has_converged(model2d):
    """A grid twice as fine over a box twice as wide, evaluated directly from the model, moves log p(x) < 1e-2."""
    model, x, grids = model2d
    for xi, g in list(zip(x, grids, strict=True))[:3]:
        (lo1, hi1), (lo2, hi2) = (g.z1[[0, -1]]), (g.z2[[0, -1]])
        w1, w2 = hi1 - lo1, hi2 - lo2
        z1 = np.linspace(lo1 - w1 / 2, hi1 + w1 / 2, 2 * len(g.z1))
        z2 = np.linspace(lo2 - w2 / 2, hi2 + w2 / 2, 2 * len(g.z2))
        zz = np.stack(np.meshgrid(z1, z2), -1).reshape(-1, 2).astype(np.float32)
        log_joint = (model.likelihood(zz).log_prob(xi) + model.prior().log_prob(zz)).numpy().astype(np.float64)
        wide = E.logsumexp(log_joint, 0) + math.log((z1[1] - z1[0]) * (z2[1] - z2[0]))
        assert abs(wide - g.log_px) < 1e-2, (wide, g.log_px)


def test_one_log_joint_grid_is_the_model_s_own_log_joint(model2d):
    """exact.log_joint_grid (the grid posterior's and the Theory page's) is log p(x|z) + log p(z) from the
    model's distributions, rows following z2, whatever the chunking."""
    model, x, _ = model2d
    z1, z2 = np.linspace(-3, 3, 7), np.linspace(-2, 2, 5)
    grid = X.log_joint_grid(model, x[0], z1, z2)
    assert grid.shape == (5, 7) and grid.dtype == np.float64
    for i, j in ((0, 0), (4, 6), (2, 3), (1, 5)):
        z = np.array([[z1[j], z2[i]]], np.float32)
        direct = float((model.likelihood(z).log_prob(x[0]) + model.prior().log_prob(z)).numpy()[0])
        assert grid[i, j] == pytest.approx(direct, abs=1e-3)
    np.testing.assert_allclose(X.log_joint_grid(model, x[0], z1, z2, rows_per_call=4), grid, rtol=0, atol=1e-4)


def test_logsumexp_along_an_axis_and_over_everything():
    a = np.array([[0.0, 1000.0], [-np.inf, -np.inf], [1.0, 2.0]])
    np.testing.assert_allclose(E.logsumexp(a, 1), [1000.0, -np.inf, 2 + math.log1p(math.exp(-1))])
    np.testing.assert_allclose(E.logsumexp(a[[0, 2]], 0), [1.0 + math.log1p(math.exp(-1)), 1000.0])
    total = E.logsumexp(a[2])
    assert isinstance(total, float) and total == pytest.approx(math.log(math.e + math.e ** 2))
    assert E.logsumexp(np.full(3, -np.inf)) == -np.inf  # no NaN from −∞ − (−∞)
    assert E.logsumexp([800.0, 800.0]) == pytest.approx(800 + math.log(2))  # exp(800) alone would overflow


# -- the IWAE bounds -------------------------------------------------------------------------------------
def test_elbo_below_iwae_bounds_increasing_in_k(model4d):
    model, x = model4d
    est = E.estimate_log_px(model, x, k=5000)
    curve = est.iwae_curve()
    means = np.array(curve["mean"])
    print("L_k:", dict(zip(curve["k"], np.round(means, 3), strict=True)), "ELBO:", round(float(est.elbo.mean()), 3))
    assert curve["k"] == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
    assert np.all(np.diff(means) > 0)
    assert est.elbo.mean() < means[1]  # ELBO ≤ L_2 ≤ … ≤ L_K
    assert abs(est.elbo.mean() - means[0]) < 3 * curve["mc_stderr"][0]  # L_1 is the ELBO
    np.testing.assert_allclose(est.iwae[:, -1], est.log_px)  # L_K from one group of K is log p̂_K
    assert np.all(np.isfinite(est.iwae_mc_var))


def test_log_px_is_at_least_the_same_draw_elbo_for_every_image_and_k(model4d):
    """log (1/K) Σ w ≥ (1/K) Σ log w for any K draws: every dot of the page's scatter lies on or under y = x, and
    every gap of its histogram is ≥ 0 (with the analytic-KL ELBO a single image may fall either side)."""
    model, x = model4d
    for k in (1, 2, 10, 100, 1000):
        est = E.estimate_log_px(model, x, k=k, seed=k)
        assert np.all(est.log_px >= est.elbo_same_draws - 1e-9), k
        assert np.all(est.gap_same_draws >= -1e-9)
        np.testing.assert_allclose(est.iwae[:, 0], est.elbo_same_draws, rtol=0, atol=1e-9)  # L_1 from the same draws
        if k == 1:
            np.testing.assert_allclose(est.log_px, est.elbo_same_draws, rtol=0, atol=1e-9)
        s = est.summary()
        assert s["gap_same_draws"] == pytest.approx(s["log_px"] - s["elbo_same_draws"], abs=1e-9)


def test_l1_is_the_one_sample_elbo_of_the_same_draw(model4d):
    """K = 1: log p̂_1 = L_1 = log p(x|z) + log p(z) − log q(z|x) at z = μ + s·ε, ε the image's draw."""
    model, x = model4d
    est = E.estimate_log_px(model, x, k=1, seed=4)
    q = model.posterior(x)
    eps = np.stack([draws.image_noise(4, i, 1, 4)[0] for i in range(len(x))])
    z = q.loc + q.stddev() * eps
    log_lik = model.likelihood(z).log_prob(x).numpy()
    direct = log_lik + model.prior().log_prob(z).numpy() - q.log_prob(z).numpy()
    np.testing.assert_allclose(est.log_px, direct, atol=1e-4)
    np.testing.assert_allclose(est.iwae[:, 0], direct, atol=1e-4)
    kl = E.elbo(model, x, num_samples=1, seed=4).kl
    np.testing.assert_allclose(est.elbo, log_lik - kl, atol=1e-4)  # the Estimate's ELBO: same draw, exact KL
    np.testing.assert_allclose(E.elbo(model, x, 1, analytic_kl=False, seed=4).elbo, direct, atol=1e-4)


def test_analytic_and_monte_carlo_kl_agree(model4d):
    model, x = model4d
    analytic = E.elbo(model, x, num_samples=4000, analytic_kl=True, seed=2)
    mc = E.elbo(model, x, num_samples=4000, analytic_kl=False, seed=2)
    np.testing.assert_allclose(analytic.kl_mc, mc.kl)  # same draws
    z = (analytic.kl - mc.kl) / mc.kl_mc_stderr
    pooled = np.mean(analytic.kl - mc.kl) / (np.sqrt(np.sum(mc.kl_mc_stderr ** 2)) / len(x))
    print("(analytic − MC KL) / stderr:", np.round(z, 2), "pooled over images:", round(float(pooled), 2))
    assert abs(pooled) < 3 and np.all(np.abs(z) < 4)  # 16 images: one beyond 3 standard errors is no surprise
    assert np.all(np.abs(analytic.elbo - mc.elbo) < 3 * mc.elbo_mc_stderr)
    np.testing.assert_allclose(analytic.recon, mc.recon)


# -- the Monte-Carlo standard error, against the spread over seeds ----------------------------------------------
@pytest.fixture(scope="module")
def tiny4d():
    """A 4-D latent MLP on the tiny 8×8 set: heavy-tailed weights (k̂ ≈ 0.6–0.7), where the delta method's
    bars are too narrow."""
    data = make_tiny_dataset()
    model = train(Config(latent_dim=4, hidden=(32,), batch_size=64, epochs=20, learning_rate=3e-3), data)
    return model, data.test_images("bernoulli")[:20]


def calibration(lp, se):
    """(pooled ratio of the seed-to-seed SD to the reported SE, share of seeds within ±2 SE of the seeds' mean):
    lp, se (seeds, images)."""
    sd = lp.std(0, ddof=1)
    return (math.sqrt(np.sum(sd ** 2) / np.sum(np.mean(se ** 2, 0))),
            float(np.mean(np.abs(lp - lp.mean(0)) <= 2 * se)))


def test_standard_error_matches_the_spread_over_16_seeds(tiny4d):
    """20 images × 16 seeds at K = 2000: the SD over seeds / the reported SE is within 0.7–1.4 pooled, and ±2 SE
    covers at least 88 % of the seeds; the delta method √(1/ESS − 1/K) on the same draws, for comparison."""
    model, x = tiny4d
    K = 2000
    ests = [E.estimate_log_px(model, x, k=K, seed=s) for s in range(16)]
    lp = np.stack([e.log_px for e in ests])
    ratio, cover = calibration(lp, np.stack([e.log_px_mc_stderr for e in ests]))
    d_ratio, d_cover = calibration(lp, np.stack([mc_error.delta_method_stderr(e.ess, K) for e in ests]))
    print(f"fit: ratio {ratio:.2f}, ±2 SE covers {cover:.1%}; delta method: ratio {d_ratio:.2f}, covers {d_cover:.1%}")
    assert 0.7 <= ratio <= 1.4 and cover >= 0.88
    assert d_cover < cover  # what the fit replaced covers less
    # the curve's last point is log p̂_K with that same error
    np.testing.assert_allclose(ests[0].iwae_mc_var[:, -1], ests[0].log_px_mc_stderr ** 2)


@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_paired_standard_error_matches_the_spread_of_the_difference_over_seeds(tiny4d):
    """Two runs on the same images: 16 repeats of the whole comparison, each on 40 images of its own and with its
    own seed. The spread of the mean difference over the repeats matches the paired SE sd(d)/√n each reports,
    which is far smaller than the runs' own SEs over images combined."""
    model_a, _ = tiny4d
    model_b = train(Config(latent_dim=2, hidden=(32,), batch_size=64, epochs=20, learning_rate=3e-3),
                    make_tiny_dataset())
    x = make_tiny_dataset(n_test=640).test_images("bernoulli")  # the same training set: its draws come first
    diffs, ses, unpaired = [], [], []
    for s in range(16):
        xs = x[40 * s:40 * (s + 1)]
        a, b = (E.estimate_log_px(m, xs, k=200, seed=s) for m in (model_a, model_b))
        p = mc_error.paired(a.log_px, b.log_px)
        diffs.append(p.mean)
        ses.append(p.stderr)
        unpaired.append(math.hypot(a.summary()["log_px_stderr"], b.summary()["log_px_stderr"]))
    ratio = float(np.std(diffs, ddof=1) / math.sqrt(np.mean(np.square(ses))))
    print(f"difference {np.mean(diffs):+.2f}: SD over repeats {np.std(diffs, ddof=1):.3f}, paired SE "
          f"{math.sqrt(np.mean(np.square(ses))):.3f} (ratio {ratio:.2f}), unpaired {np.mean(unpaired):.3f}")
    assert 0.7 <= ratio <= 1.4
    assert np.mean(unpaired) > 1.5 * np.mean(ses)


# -- implementation: chunking, memory, progress, stop ------------------------------------------------------
def test_chunked_and_unchunked_agree(model4d):
    model, x = model4d
    ref = E.estimate_log_px(model, x, k=300, seed=1)
    for kw in ({"rows_per_call": 37}, {"max_weights": 300 * 10 * 3},
               {"rows_per_call": 999, "max_weights": 300 * 10 * 5}):
        other = E.estimate_log_px(model, x, k=300, seed=1, **kw)
        np.testing.assert_allclose(other.log_px, ref.log_px, rtol=0, atol=1e-4)
        np.testing.assert_allclose(other.ess, ref.ess, rtol=1e-4)
        np.testing.assert_allclose(other.iwae, ref.iwae, rtol=0, atol=1e-4)
        np.testing.assert_allclose(other.elbo, ref.elbo, rtol=0, atol=1e-4)
    # a longer run extends a shorter one: its first 300 draws are the same draws
    log_w, _ = E.log_weights(model, x, 1000, seed=1)
    np.testing.assert_allclose(E.logsumexp(log_w[:300], 0) - math.log(300), ref.log_px, rtol=0, atol=1e-4)
    # K itself ends the IWAE curve, and every L_k has the same kind of error: sd(k)²/⌊K/k⌋, sd(k) the spread of one
    # k-draw estimate, fitted as a power law in k and extended to the last points (one group of 200, or of 300)
    assert ref.iwae_ks == (1, 2, 5, 10, 20, 50, 100, 200, 300)
    sd = np.sqrt(ref.iwae_mc_var * (300 // np.array(ref.iwae_ks)))
    assert np.all(np.diff(np.log(sd[:, 1:]), axis=1) <= 1e-9)  # from k = 2 on: never narrower than the trend
    np.testing.assert_allclose(ref.iwae_mc_var[:, -1], ref.log_px_mc_stderr ** 2)


def test_decoder_never_sees_k_times_n_rows(model4d, monkeypatch):
    """K = 5000 over 1000 images: every compiled call gets ≤ ROWS_PER_CALL rows (the decoder is faked
    here so that the test measures the batching, not the arithmetic)."""
    model, _ = model4d
    calls = []

    def fake_draw_fn(_model):
        def fn(x, loc, tril, eps):
            calls.append(eps.shape[0] * eps.shape[1])
            zeros = tf.zeros(eps.shape[:2])
            return zeros, zeros
        return fn

    monkeypatch.setattr(draws, "draw_fn", fake_draw_fn)
    x = np.zeros((1000, 784), np.float32)
    est = E.estimate_log_px(model, x, k=5000, proposal="prior")  # the prior path also computes an ELBO
    assert est.num_images == 1000 and max(calls) <= draws.ROWS_PER_CALL and sum(calls) >= 5000 * 1000
    calls.clear()
    E.elbo(model, x, num_samples=2000)
    assert max(calls) <= draws.ROWS_PER_CALL and sum(calls) == 2000 * 1000


def test_image_counts_share_a_few_batch_shapes(model4d, monkeypatch):
    """Images go in batches of powers of two, so that the log p(x) and bound pages, asked for any count of images,
    compile (and keep, for the life of the server) a handful of shapes: 19 counts from 1 to 127 make 7, where
    equal batches of whatever size fitted made one or two per count."""
    assert draws.power_parts(100, 113) == [64, 32, 4] and draws.power_parts(10, 113) == [8, 2]
    assert draws.power_parts(200, 113) == [64, 64, 64, 8] and draws.power_parts(16, 113) == [16]
    assert draws.power_parts(7, 1) == [1] * 7 and draws.power_parts(100, 31) == [16] * 6 + [4]
    for n in range(1, 130):
        sizes = draws.power_parts(n, 40)
        assert sum(sizes) == n and all(s in (1, 2, 4, 8, 16, 32) for s in sizes) and sizes == sorted(sizes)[::-1]
    model, x = model4d
    shapes = set()

    def fake_draw_fn(_model):
        def fn(x, loc, tril, eps):
            shapes.add(tuple(eps.shape))
            zeros = tf.zeros(eps.shape[:2])
            return zeros, zeros
        return fn

    monkeypatch.setattr(draws, "draw_fn", fake_draw_fn)
    for n in range(1, 130, 7):
        assert E.estimate_log_px(model, np.zeros((n, x.shape[1]), np.float32), k=1000).num_images == n
    assert len(shapes) == 7 and {b for _, b, _ in shapes} == {1, 2, 4, 8, 16, 32, 64}


def test_progress_stop_and_k_range(model4d):
    model, x = model4d
    x = x[:12]
    kw = dict(k=200, max_weights=200 * 10 * 4)  # four images a batch
    seen = []
    full = E.estimate_log_px(model, x, on_progress=lambda done, total, s: seen.append((done, total)), **kw)
    assert [d for d, _ in seen] == [4, 8, 12] and {t for _, t in seen} == {12} and not full.cancelled

    seen.clear()
    part = E.estimate_log_px(model, x, on_progress=lambda d, t, s: seen.append(d), stop=lambda: len(seen) >= 2, **kw)
    assert part.cancelled and part.num_images == 8 and part.summary()["cancelled"]
    np.testing.assert_allclose(part.log_px, full.log_px[:8])

    checks = []  # a stop request in the middle of a batch (checked between compiled calls)
    part = E.estimate_log_px(model, x, k=200, rows_per_call=100, max_weights=200 * 10 * 3,
                             stop=lambda: checks.append(1) or len(checks) > 9)
    assert part.cancelled and 0 < part.num_images < 12

    event = threading.Event()
    event.set()
    with pytest.raises(E.Cancelled):
        E.estimate_log_px(model, x, stop=event, **kw)
    for bad in (0, -1, E.MAX_K + 1, 2.5):
        with pytest.raises(ValueError, match="k must be"):
            E.estimate_log_px(model, x, k=bad)


def test_evaluate_reports_exact_and_grid_answers(linear, model2d):
    model, _, _, x = linear
    est, out = V.evaluate(model, x[:8], k=200)
    assert out["exact_log_px"] == pytest.approx(X.exact_log_px(model, x[:8]).mean(), abs=1e-9)
    assert out["log_px"] == pytest.approx(out["exact_log_px"], abs=0.05) and "grid_log_px" not in out
    model, x, grids = model2d
    est, out = V.evaluate(model, x[:3], k=200, grid_images=3)
    assert out["grid_log_px"] == pytest.approx(np.mean([g.log_px for g in grids[:3]]), abs=1e-9)
    assert out["grid_num_images"] == 3 and "exact_log_px" not in out


def test_prior_proposal_has_far_lower_ess_than_q(model4d):
    """Doersch's "why not sample the prior?": in 4-D on 784 pixels almost no prior draw explains x."""
    model, x = model4d
    q = E.estimate_log_px(model, x, k=2000)
    prior = E.estimate_log_px(model, x, k=2000, proposal="prior")
    print("mean ESS of 2000: q", q.ess.mean(), "prior", prior.ess.mean())
    print("median ESS: q", np.median(q.ess), "prior", np.median(prior.ess))
    assert prior.ess.mean() * 10 < q.ess.mean() and np.median(prior.ess) * 10 < np.median(q.ess)
    # the prior given as a distribution object (one for all images) is the same proposal
    given = E.estimate_log_px(model, x, k=2000, proposal=tfd.MultivariateNormalDiag(tf.zeros(4), tf.ones(4)))
    np.testing.assert_allclose(given.log_px, prior.log_px, rtol=0, atol=1e-4)
    assert prior.log_px.mean() < q.log_px.mean()  # with few effective draws the prior's estimate is far too low
