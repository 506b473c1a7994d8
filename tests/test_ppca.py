"""A linear VAE against its optimum: probabilistic PCA's maximum likelihood, in closed form (exact.ppca_ml).

x = Wz + b + σε with a known W (64 pixels, latent 4): PPCA recovers σ and beats the true parameters on the data it
was fitted to; a linear VAE with a learned σ, trained through train.train for the default epochs, reaches PPCA's
held-out log p(x) within 1 nat/image; the shipped linear-Gaussian run is within 3 nats/image of PPCA on the test set.
"""
from pathlib import Path

import numpy as np
import pytest

from vae_tf import exact, runs
from vae_tf.config import Config
from vae_tf.data import Dataset
from vae_tf.train import train

REPO = Path(__file__).resolve().parent.parent
SIGMA, D, LATENT = 0.08, 64, 4


def synthetic_linear(n_train=10_000, n_test=2_000, seed=0):
    """x = Wz + 0.5 + σε, W (64, 4) with N(0, 0.08²) entries, σ = 0.08, as 8×8 uint8 grey levels (0.5 % of pixels
    clipped at 0 or 1, and quantised to 1/255: what any Dataset holds)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0, 0.08, (D, LATENT))

    def draw(m):
        x = rng.standard_normal((m, LATENT)) @ W.T + 0.5 + SIGMA * rng.standard_normal((m, D))
        return np.clip(np.round(255 * x), 0, 255).astype(np.uint8).reshape(m, 8, 8)

    return Dataset("synthetic-linear", draw(n_train), None, draw(n_test), None, ()), W


@pytest.fixture(scope="module")
def synthetic():
    ds, W = synthetic_linear()
    return ds, W, exact.ppca_ml(ds.train_images("gaussian"), LATENT)


def test_ppca_is_the_maximum_likelihood_of_its_data(synthetic):
    """PPCA's σ is the true σ (up to sampling and quantisation), its log p(x) of the training images beats the true
    parameters' and every nearby W and σ, and a linear VAE given PPCA's W, b, σ has PPCA's exact log p(x)."""
    ds, W, pp = synthetic
    x = ds.train_images("gaussian")
    assert pp.sigma == pytest.approx(SIGMA, rel=0.02)
    best = pp.log_px(x).mean()
    assert best >= exact.PPCA(np.full(D, 0.5), W, SIGMA).log_px(x).mean()
    rng = np.random.default_rng(1)
    for _ in range(3):
        assert best > exact.PPCA(pp.mean, pp.W + rng.normal(0, 0.002, pp.W.shape), pp.sigma).log_px(x).mean()
    for s in (0.99 * pp.sigma, 1.01 * pp.sigma):
        assert best > exact.PPCA(pp.mean, pp.W, s).log_px(x).mean()
    from vae_tf.model import VAE

    model = VAE(Config(latent_dim=LATENT, hidden=(16,), decoder="linear", likelihood="gaussian", sigma=pp.sigma), D)
    layer = model.decoder.get_layer("dec_out")
    layer.kernel.assign(pp.W.T.astype(np.float32))
    layer.bias.assign(pp.mean.astype(np.float32))
    xt = ds.test_images("gaussian")
    np.testing.assert_allclose(exact.exact_log_px(model, xt[:50]), pp.log_px(xt[:50]), atol=2e-3)


def test_a_linear_vae_with_a_learned_sigma_reaches_ppca_in_its_default_epochs(synthetic, tmp_path):
    """The σ-VAE's closed-form σ (step.loss_optimal_sigma, Trainer.set_optimal_sigma): a learned σ that starts at 1
    no longer crawls at Adam's step size, and the run ends within 1 nat/image of PPCA's held-out log p(x)."""
    ds, _, pp = synthetic
    config = Config(dataset="synthetic.npz", latent_dim=LATENT, decoder="linear", likelihood="gaussian",
                    sigma="learned")
    result = train(config, ds, tmp_path / "linear")
    sigma = float(result.model.sigma.numpy())
    xt = ds.test_images("gaussian")
    vae, best = exact.exact_log_px(result.model, xt).mean(), pp.log_px(xt).mean()
    print(f"σ {sigma:.4f} (PPCA {pp.sigma:.4f}, true {SIGMA}); held-out log p(x) {vae:.2f}, PPCA {best:.2f}")
    assert sigma == pytest.approx(pp.sigma, rel=0.03)
    assert best - 1.0 < vae < best + 0.5  # PPCA is the optimum on its training images, not exactly on held-out ones
    saved = runs.load_run(tmp_path / "linear")
    assert float(saved.model.sigma.numpy()) == pytest.approx(sigma)  # the closed-form σ is what the run keeps


def test_the_shipped_linear_run_is_within_3_nats_of_its_ppca_optimum(fashion):
    run = runs.load_run(REPO / "checkpoints" / "fashion-linear-gaussian")
    xt = fashion.test_images("gaussian")
    vae = np.concatenate([exact.exact_log_px(run.model, xt[i:i + 2000]) for i in range(0, len(xt), 2000)]).mean()
    pp = exact.ppca_ml(fashion.train_images("gaussian"), run.config.latent_dim)
    best = pp.log_px(xt).mean()
    # from the uint8 pixels scaled in batches (what the app does: no float copy of the training set), the same
    same = exact.ppca_ml(fashion.x_train.reshape(len(fashion.x_train), -1), run.config.latent_dim, scale=1 / 255)
    assert same.sigma == pytest.approx(pp.sigma, rel=1e-5) and same.log_px(xt[:100]) == pytest.approx(
        pp.log_px(xt[:100]), abs=1e-3)
    print(f"shipped linear run: test log p(x) {vae:.2f}, PPCA {best:.2f} (σ {float(run.model.sigma.numpy()):.4f}, "
          f"PPCA {pp.sigma:.4f})")
    assert best - 3.0 < vae <= best + 0.5
