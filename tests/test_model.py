"""The VAE's distributions and ELBO terms, checked against the formulas computed by hand in numpy."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_tf.config import Config
from vae_tf import model as M
from vae_tf.model import SCALE_FLOOR, SIGMA_FLOOR, VAE

D, LATENT = 64, 3


def seed(a, b=0):
    return tf.constant([a, b], tf.int32)


@pytest.fixture(scope="module")
def bern():
    return VAE(Config(latent_dim=LATENT, hidden=(16, 8), seed=1), D)


@pytest.fixture(scope="module")
def gauss():
    return VAE(Config(latent_dim=LATENT, hidden=(16,), likelihood="gaussian", sigma=0.3, seed=2), D)


@pytest.fixture(scope="module")
def linear_learned():
    return VAE(Config(latent_dim=LATENT, decoder="linear", likelihood="gaussian", sigma="learned", seed=3), D)


@pytest.fixture(scope="module")
def x_grey():
    return np.random.default_rng(0).random((5, D)).astype(np.float32)


@pytest.fixture(scope="module")
def x_bits(x_grey):
    return (x_grey > 0.5).astype(np.float32)


def log_sigmoid(logits):
    return -np.logaddexp(0.0, -logits)


# -- shapes ---------------------------------------------------------------------------
def test_posterior_and_prior_shapes(bern, x_bits):
    q = bern.posterior(x_bits)
    assert q.batch_shape == (5,) and q.event_shape == (LATENT,)
    assert q.sample(4, seed=seed(0)).shape == (4, 5, LATENT)
    assert q.log_prob(q.sample(seed=seed(1))).shape == (5,)
    p = bern.prior()
    assert p.batch_shape == () and p.event_shape == (LATENT,)
    np.testing.assert_array_equal(p.mean(), np.zeros(LATENT))
    np.testing.assert_array_equal(p.stddev(), np.ones(LATENT))
    assert bern.encode_mean(x_bits).shape == (5, LATENT)


@pytest.mark.parametrize("which", ["bern", "gauss", "linear_learned"])
@pytest.mark.parametrize("lead", [(), (5,), (7, 5), (2, 3, 5)])
def test_likelihood_shapes_with_sample_dims(request, which, lead, x_grey):
    model = request.getfixturevalue(which)
    z = np.random.default_rng(1).normal(size=lead + (LATENT,)).astype(np.float32)
    lik = model.likelihood(z)
    assert lik.batch_shape == lead and lik.event_shape == (D,)
    assert lik.mean().shape == lead + (D,)
    if lead and lead[-1] == 5:
        assert lik.log_prob(x_grey if which != "bern" else (x_grey > 0.5).astype(np.float32)).shape == lead


def test_image_helpers_shapes_and_range(bern, gauss, x_grey):
    for model in (bern, gauss):
        for img in (model.reconstruct(x_grey), model.reconstruct(x_grey, sample=True, seed=seed(3)),
                    model.sample_prior(6, seed(4))):
            assert img.shape[-1] == D and float(tf.reduce_min(img)) >= 0.0 and float(tf.reduce_max(img)) <= 1.0
    assert bern.sample_prior(6, seed(4)).shape == (6, D)
    np.testing.assert_array_equal(bern.sample_prior(6, seed(4)), bern.sample_prior(6, seed(4)))  # stateless seeds


def test_numpy_helpers_match_the_methods(bern, x_grey):
    """The module-level helpers: numpy out, stateless int32 seeds, the same numbers as the methods."""
    s = M.tf_seed(2**31 + 5, 3)
    assert s.dtype == np.int32 and s.tolist() == [5, 3]
    x = np.asarray(x_grey)
    mean = M.reconstruct(bern, x)
    assert isinstance(mean, np.ndarray) and mean.shape == x.shape
    np.testing.assert_allclose(mean, bern.reconstruct(x), rtol=1e-6)
    drawn = M.reconstruct(bern, x, sample=True, seed=7)
    np.testing.assert_array_equal(drawn, M.reconstruct(bern, x, sample=True, seed=7))
    np.testing.assert_allclose(drawn, bern.reconstruct(x, sample=True, seed=M.tf_seed(7, 1)), rtol=1e-6)
    prior = M.sample_prior(bern, 4, seed=9)
    assert prior.shape == (4, D) and prior.min() >= 0 and prior.max() <= 1
    np.testing.assert_allclose(prior, bern.sample_prior(4, M.tf_seed(9, 2)), rtol=1e-6)
    z = M.encode_mean(bern, x, batch=2)  # several batches, concatenated in order
    np.testing.assert_allclose(z, bern.encode_mean(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(M.decode_mean(bern, z), bern.mean_image(z), rtol=1e-6)
    draws = M.sample_posterior(bern, x[0], 500, seed=4)
    assert draws.shape == (500, LATENT)
    np.testing.assert_array_equal(draws, M.sample_posterior(bern, x[0], 500, seed=4))  # stateless seeds
    q = bern.posterior(x[:1])
    np.testing.assert_allclose(draws.mean(0), q.mean().numpy()[0], atol=4 * q.stddev().numpy().max() / np.sqrt(500))


# -- scale floors -------------------------------------------------------------------------
def test_posterior_scale_floor_for_huge_negative_preactivations(x_grey):
    model = VAE(Config(latent_dim=LATENT, hidden=(8,), seed=4), D)
    out = model.encoder.get_layer("enc_out")
    out.kernel.assign(np.zeros(out.kernel.shape, np.float32))
    out.bias.assign(np.r_[np.zeros(LATENT), np.full(LATENT, -1e30)].astype(np.float32))
    q = model.posterior(x_grey)
    scale = q.stddev().numpy()
    assert np.all(scale > 0)
    np.testing.assert_allclose(scale, SCALE_FLOOR, rtol=1e-6)
    assert np.all(np.isfinite(q.log_prob(q.sample(3, seed=seed(5))).numpy()))
    assert np.all(np.isfinite(model.elbo_terms(x_grey, seed(6))[1].numpy()))


def test_learned_sigma_floor():
    model = VAE(Config(latent_dim=LATENT, hidden=(8,), likelihood="gaussian", sigma="learned"), D)
    model.raw_sigma.assign(-1e30)
    assert float(model.sigma) == pytest.approx(SIGMA_FLOOR, rel=1e-6) and float(model.sigma) > 0


# -- the ELBO's parts, by hand ---------------------------------------------------------------
@pytest.mark.parametrize("which", ["bern", "gauss"])
def test_analytic_kl_by_hand(request, which, x_grey):
    model = request.getfixturevalue(which)
    q = model.posterior(x_grey)
    mu, s = q.mean().numpy().astype(np.float64), q.stddev().numpy().astype(np.float64)
    by_hand = 0.5 * np.sum(mu**2 + s**2 - np.log(s**2) - 1.0, axis=-1)
    _, kl = model.elbo_terms(x_grey, seed(7), analytic_kl=True)
    assert kl.shape == (5,)
    np.testing.assert_allclose(kl.numpy(), by_hand, rtol=1e-5, atol=1e-6)
    assert np.all(by_hand > 0)


def test_monte_carlo_kl_agrees_with_analytic(bern, x_bits):
    _, exact = bern.elbo_terms(x_bits, seed(8), num_samples=1, analytic_kl=True)
    _, mc = bern.elbo_terms(x_bits, seed(8), num_samples=20000, analytic_kl=False)
    # MC error of a mean of 20000 draws of log q − log p, whose std is O(√d): well under 0.1 nat.
    np.testing.assert_allclose(mc.numpy(), exact.numpy(), atol=0.1)


@pytest.mark.parametrize("which", ["gauss", "linear_learned"])
def test_gaussian_log_likelihood_by_hand(request, which, x_grey):
    model = request.getfixturevalue(which)
    z = np.random.default_rng(2).normal(size=(4, 5, LATENT)).astype(np.float32)
    f = model.decoder(z.reshape(-1, LATENT)).numpy().reshape(4, 5, D).astype(np.float64)
    sigma = float(model.sigma)
    by_hand = (-np.sum((x_grey - f) ** 2, -1) / (2 * sigma**2) - D * math.log(sigma)
               - D / 2 * math.log(2 * math.pi))
    np.testing.assert_allclose(model.likelihood(z).log_prob(x_grey).numpy(), by_hand, rtol=1e-5)


def test_gaussian_density_can_exceed_one():
    model = VAE(Config(latent_dim=LATENT, hidden=(8,), likelihood="gaussian", sigma=0.01), D)
    z = np.zeros((1, LATENT), np.float32)
    x = model.decoder(z).numpy()  # x exactly at the decoder mean: log p = −D log σ − (D/2) log 2π > 0
    expected = -D * math.log(0.01) - D / 2 * math.log(2 * math.pi)
    assert float(model.likelihood(z).log_prob(x)[0]) == pytest.approx(expected, rel=1e-5) and expected > 0


def test_bernoulli_log_likelihood_by_hand(bern, x_bits):
    z = np.random.default_rng(3).normal(size=(4, 5, LATENT)).astype(np.float32)
    logits = bern.decoder(z.reshape(-1, LATENT)).numpy().reshape(4, 5, D).astype(np.float64)
    p = 1 / (1 + np.exp(-logits))
    by_hand = np.sum(x_bits * np.log(p) + (1 - x_bits) * np.log(1 - p), -1)
    np.testing.assert_allclose(bern.likelihood(z).log_prob(x_bits).numpy(), by_hand, rtol=1e-5)
    stable = np.sum(x_bits * log_sigmoid(logits) + (1 - x_bits) * log_sigmoid(-logits), -1)
    np.testing.assert_allclose(by_hand, stable, rtol=1e-9)
    np.testing.assert_allclose(bern.likelihood(z).mean().numpy(), p, rtol=1e-5)


@pytest.mark.parametrize("x_kind", ["bits", "grey"])
def test_one_pass_bernoulli_is_tfps_bernoulli(x_kind):
    """BernoulliLogits' x·s − softplus(s) against TFP's own two-softplus form, values and gradients, over logits
    from −60 to 60 (where either softplus term alone is 0 or the logit itself) and binary or grey x."""
    import tensorflow_probability as tfp

    rng = np.random.default_rng(7)
    logits = tf.constant(np.concatenate([rng.normal(0, 4, (6, 50)), np.linspace(-60, 60, 300).reshape(6, 50)], 1),
                         tf.float32)
    x = rng.random((6, 100)) < 0.4 if x_kind == "bits" else rng.random((6, 100))
    x = tf.constant(x, tf.float32)

    def both(dist):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            lp = tfp.distributions.Independent(dist(logits=logits, dtype=tf.float32), 1).log_prob(x)
        return lp.numpy(), tape.gradient(lp, logits).numpy()

    (ours, d_ours), (tfps, d_tfp) = both(M.BernoulliLogits), both(tfp.distributions.Bernoulli)
    np.testing.assert_allclose(ours, tfps, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(d_ours, d_tfp, atol=1e-6)  # x − σ(s)
    np.testing.assert_allclose(d_ours, x.numpy() - 1 / (1 + np.exp(-logits.numpy())), atol=1e-6)


@pytest.mark.parametrize("num_samples", [1, 6])
def test_elbo_terms_assemble_the_bound(bern, x_bits, num_samples):
    s = seed(11, 3)
    recon, kl = bern.elbo_terms(x_bits, s, num_samples=num_samples, analytic_kl=False)
    q = bern.posterior(x_bits)
    eps = tf.random.stateless_normal([num_samples, 5, bern.config.latent_dim], s)  # the draws elbo_terms makes
    z = q.loc + q.stddev() * eps  # reparameterized: z = μ + s ⊙ ε
    np.testing.assert_allclose(recon, tf.reduce_mean(bern.likelihood(z).log_prob(x_bits), 0), rtol=1e-6)
    # With MC KL, recon − KL is the average log weight log p(x|z) + log p(z) − log q(z|x).
    log_w = bern.log_weights(x_bits, z, q)
    assert log_w.shape == (num_samples, 5)
    np.testing.assert_allclose(recon - kl, tf.reduce_mean(log_w, 0), rtol=1e-5, atol=1e-4)
    by_hand = (bern.likelihood(z).log_prob(x_bits) + bern.prior().log_prob(z) - q.log_prob(z)).numpy()
    np.testing.assert_allclose(log_w, by_hand, rtol=1e-6)


# -- parameters ------------------------------------------------------------------------------
def test_learned_sigma_is_trainable(linear_learned, gauss, x_grey):
    v = linear_learned.raw_sigma
    assert isinstance(v, keras.Variable) and v.trainable
    assert any(w is v for w in linear_learned.trainable_variables)
    assert float(linear_learned.sigma) == pytest.approx(1.0, rel=1e-5)  # starts at σ = 1
    with tf.GradientTape() as tape:
        recon, _ = linear_learned.elbo_terms(x_grey, seed(12))
        loss = -tf.reduce_mean(recon)
    (g,) = tape.gradient(loss, [v.value])
    assert g is not None and float(g) != 0.0
    assert gauss.raw_sigma is None and float(gauss.sigma) == pytest.approx(0.3)
    assert "raw_sigma" in linear_learned.named_weights()


def test_linear_decoder_is_the_affine_map(linear_learned, bern):
    W, b = linear_learned.linear_decoder()
    assert W.shape == (D, LATENT) and b.shape == (D,)
    z = np.random.default_rng(4).normal(size=(6, LATENT)).astype(np.float32)
    np.testing.assert_allclose(linear_learned.decoder(z).numpy(), z @ W.numpy().T + b.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(linear_learned.likelihood(z).mean().numpy(), z @ W.numpy().T + b.numpy(),
                               rtol=1e-5, atol=1e-6)
    assert len(linear_learned.decoder.layers) == 1
    with pytest.raises(ValueError, match="only a linear decoder"):
        bern.linear_decoder()


def test_num_parameters_counted_by_hand(bern, linear_learned):
    enc = (D * 16 + 16) + (16 * 8 + 8) + (8 * 2 * LATENT + 2 * LATENT)
    dec = (LATENT * 8 + 8) + (8 * 16 + 16) + (16 * D + D)
    assert bern.num_parameters() == enc + dec
    assert linear_learned.num_parameters() == (D * 512 + 512) + (512 * 256 + 256) + (256 * 2 * LATENT + 2 * LATENT) \
        + (LATENT * D + D) + 1


def test_weights_by_name_round_trip_and_mismatch(x_bits):
    cfg = Config(latent_dim=LATENT, hidden=(16, 8), seed=5)
    a, b = VAE(cfg, D), VAE(cfg.replace(seed=6), D)
    assert not np.allclose(a.encode_mean(x_bits), b.encode_mean(x_bits))
    b.assign_weights(a.named_weights())
    np.testing.assert_array_equal(a.encode_mean(x_bits), b.encode_mean(x_bits))
    np.testing.assert_array_equal(a.likelihood(a.encode_mean(x_bits)).mean(),
                                  b.likelihood(b.encode_mean(x_bits)).mean())
    other = VAE(cfg.replace(latent_dim=4), D).named_weights()
    with pytest.raises(ValueError, match="has shape"):
        b.assign_weights(other, source="w.npz")
    with pytest.raises(ValueError, match="w.npz does not fit this model: missing"):
        b.assign_weights({k: v for k, v in a.named_weights().items() if "enc_0" not in k}, source="w.npz")


def test_same_seed_same_init_different_seed_different():
    cfg = Config(latent_dim=LATENT, hidden=(16,), seed=9)
    a, b, c = VAE(cfg, D).named_weights(), VAE(cfg, D).named_weights(), VAE(cfg.replace(seed=10), D).named_weights()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["encoder/enc_0/kernel"], c["encoder/enc_0/kernel"])
