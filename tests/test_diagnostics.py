"""Latent diagnostics against models whose answers are known by construction: an encoder that ignores x in
chosen dimensions, a decoder that ignores them too; the information split; the evaluate --json fields."""
import contextlib
import io
import json
import math

import numpy as np
import pytest

from vae_tf import diagnostics
from vae_tf.config import Config
from vae_tf.model import VAE, SCALE_FLOOR

D, LATENT, USED = 16, 5, (0, 3)  # the constructed model uses latent dimensions 0 and 3 only


def _inverse_softplus(y):
    return math.log(math.expm1(y))


def constructed_model(used=USED, spread: float = 1.0, scale: float = 0.3, seed: int = 0) -> VAE:
    """A linear-Gaussian VAE with chosen weights: μ_j(x) and s_j(x) depend on x only for j in `used`; the
    other dimensions get μ = 0, s = 1 (q = p(z) for every x) and a zero column of the decoder's W."""
    model = VAE(Config(latent_dim=LATENT, hidden=(8,), decoder="linear", likelihood="gaussian", sigma=0.5), D)
    rng = np.random.default_rng(seed)
    enc_0, enc_out = (model.encoder.get_layer(n) for n in ("enc_0", "enc_out"))
    dec_out = model.decoder.get_layer("dec_out")
    enc_0.kernel.assign(rng.normal(size=(D, 8)).astype(np.float32))
    enc_0.bias.assign(np.full(8, 0.5, np.float32))  # ReLU units alive on most inputs
    kernel, bias = np.zeros((8, 2 * LATENT), np.float32), np.zeros(2 * LATENT, np.float32)
    for j in used:
        kernel[:, j] = spread * rng.normal(size=8)  # μ_j varies with x
        bias[LATENT + j] = _inverse_softplus(scale - SCALE_FLOOR)  # s_j = scale
    for j in set(range(LATENT)) - set(used):
        bias[LATENT + j] = _inverse_softplus(1.0 - SCALE_FLOOR)  # s_j = 1, μ_j = 0: the prior
    enc_out.kernel.assign(kernel)
    enc_out.bias.assign(bias)
    w = np.zeros((LATENT, D), np.float32)
    w[list(used)] = rng.normal(size=(len(used), D))
    dec_out.kernel.assign(w)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).random((400, D)).astype(np.float32)


def test_active_units_are_exactly_the_dimensions_the_encoder_uses(images):
    diag = diagnostics.diagnose(constructed_model(), images)
    assert diag.active_units == len(USED)
    assert np.flatnonzero(diag.active).tolist() == list(USED)
    unused = [j for j in range(LATENT) if j not in USED]
    assert np.all(diag.activity[unused] == 0)  # μ_j(x) = 0 for every x: no variance at all
    np.testing.assert_allclose(diag.kl_per_dim[unused], 0, atol=1e-6)  # q = N(0, 1) in those dimensions
    assert np.all(diag.kl_per_dim[list(USED)] > 0.1)
    assert set(diag.order[:len(USED)]) == set(USED)  # the used dimensions come first by KL


def test_kl_per_dimension_is_the_closed_form_and_sums_to_the_analytic_kl(images):
    from vae_tf import estimators

    model = constructed_model()
    diag = diagnostics.diagnose(model, images)
    mu, s = diagnostics.posterior_moments(model, images)
    by_hand = 0.5 * (mu ** 2 + s ** 2 - np.log(s ** 2) - 1)
    np.testing.assert_allclose(diag.kl_per_dim, by_hand.mean(0), rtol=1e-10)
    kl = estimators.elbo(model, images).kl  # tfd.kl_divergence of the full diagonal Gaussians
    assert diag.kl == pytest.approx(kl.mean(), rel=1e-5)


def test_the_information_split_sums_to_the_average_kl_within_its_error(images):
    diag = diagnostics.diagnose(constructed_model(), images, seed=3, repeats=4)
    assert diag.draws == 4 * len(images)
    total_se = diag.kl_mc_stderr
    assert 0 < total_se < 0.1 * diag.kl
    assert abs(diag.mutual_information + diag.marginal_kl - diag.kl) < 4 * total_se
    assert abs(diag.split_check) < 4
    assert 0 < diag.mutual_information < diag.log_n and diag.marginal_kl > 0
    assert diag.mutual_information_stderr > 0 and diag.marginal_kl_stderr > 0


def test_an_encoder_that_ignores_x_carries_no_information(images):
    """q(z|x) the same for every x: q(z) = q(z|x), so I(x; z) = 0 exactly, and the marginal KL is all the KL."""
    model = constructed_model(used=(0, 3), spread=0.0, scale=0.3)
    diag = diagnostics.diagnose(model, images, seed=1)
    assert diag.active_units == 0
    assert diag.mutual_information == pytest.approx(0, abs=1e-9)
    assert diag.marginal_kl == pytest.approx(diag.kl, abs=4 * diag.marginal_kl_stderr)


def test_well_separated_posteriors_reach_the_log_n_ceiling():
    """Codes far apart compared with their spread: each z identifies its image, so I(x; z) = log N."""
    mu = np.arange(50, dtype=np.float64)[:, None] * np.ones((1, 2)) * 10.0
    s = np.full_like(mu, 0.01)
    split = diagnostics.information_split(mu, s, seed=0)
    assert split["mutual_information"] == pytest.approx(math.log(50), abs=1e-6)


def test_traversals_change_the_image_only_along_the_used_dimensions(images):
    model = constructed_model()
    trav = diagnostics.traverse(model, images[0], dims=range(LATENT), span=3.0, steps=7)
    assert trav.images.shape == (LATENT, 7, D)
    np.testing.assert_allclose(trav.values, np.linspace(-3, 3, 7))
    for j in range(LATENT):
        if j in USED:
            assert trav.change[j] > 0.1, j
        else:
            np.testing.assert_allclose(trav.images[j], trav.images[j][:1].repeat(7, 0), atol=1e-6)
            assert trav.change[j] < 1e-6


def test_ppca_spectrum_of_data_with_known_covariance():
    """x = A u with known A: the covariance's eigenvalues are those of A Aᵀ; a dimension whose eigenvalue is
    below σ² has KL 0 at the PPCA optimum, the others ½ log(λ/σ²)."""
    rng = np.random.default_rng(0)
    lam_true = np.array([4.0, 1.0, 0.25, 0.01])
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    u = rng.standard_normal((200_000, 4))
    x = (u * np.sqrt(lam_true)) @ q.T
    lam = diagnostics.data_eigenvalues(x, batch=30_000)
    np.testing.assert_allclose(lam, lam_true, rtol=0.02, atol=1e-3)
    kl = diagnostics.ppca_kl_per_dim(lam_true, sigma=0.5, latent_dim=5)
    np.testing.assert_allclose(kl, [0.5 * math.log(16), 0.5 * math.log(4), 0, 0, 0], atol=1e-12)


@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_evaluate_json_reports_active_units_kl_per_dim_and_mutual_information(npz, tmp_path):
    from vae_tf.__main__ import main

    out = tmp_path / "run"
    flags = ["--epochs", "1", "--latent-dim", "3", "--hidden", "16", "--batch-size", "32", "--max-train-images",
             "128", "--seed", "4"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", "--data", str(npz), "--out", str(out), *flags]) == 0
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        assert main(["evaluate", "--checkpoint", str(out), "--k", "8", "--num-images", "60", "--json"]) == 0
    result = json.loads(stdout.getvalue())
    assert isinstance(result["active_units"], int) and 0 <= result["active_units"] <= 3
    assert len(result["kl_per_dim"]) == 3 and all(v >= 0 for v in result["kl_per_dim"])
    assert 0 <= result["mutual_information"] <= math.log(60) + 1e-9
    assert result["diagnostics_images"] == 60
    total = result["mutual_information"] + result["marginal_kl"]
    assert total == pytest.approx(sum(result["kl_per_dim"]), abs=4 * math.hypot(
        result["mutual_information_stderr"], result["marginal_kl_stderr"]) + 1e-6)
