"""vae_tf.theory and vae_tf.exact: the derivation's terms two ways, the prior as a proposal, the grid
posterior against the estimators on the shipped 2-D run, IWAE training; and the posterior, latent-point,
manifold and compared-curves figures of vae_tf.plots."""
import math
from pathlib import Path

import numpy as np
import pytest

from vae_tf import estimators, exact, plots, theory
from vae_tf.runs import load_run
from vae_tf.config import Config
from vae_tf.model import VAE

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints"


def tiny_model(**kw) -> VAE:
    return VAE(Config(latent_dim=2, hidden=(16,), **kw), 64)


@pytest.fixture(scope="module")
def two_d(fashion):
    run = load_run(SHIPPED / "fashion-2d")
    return run.model, fashion.test_images("bernoulli")


@pytest.fixture(scope="module")
def default(fashion):
    run = load_run(SHIPPED / "fashion-default")
    return run.model, fashion.test_images("bernoulli")


# -- the derivation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(likelihood="gaussian", sigma=0.3),
                                dict(likelihood="gaussian", sigma="learned", decoder="linear")])
def test_every_term_agrees_between_tfd_and_formula(tiny_dataset, kw):
    model = tiny_model(**kw)
    x = tiny_dataset.test_images(model.config.likelihood)[3]
    d = theory.derivation(model, x, num_samples=300, seed=2)
    for term in (d.recon, d.kl, d.elbo):
        assert term.difference < 1e-3 * max(1.0, abs(term.formula))
    # the ½ and the π, as numbers
    assert d.kl_without_half == pytest.approx(2 * d.kl.formula)
    assert d.kl.formula > 0
    if model.config.likelihood == "gaussian":
        assert d.error_term_with_pi * math.pi == pytest.approx(d.error_term)
        D, sigma = d.num_pixels, d.sigma
        assert d.log_norm == pytest.approx(D * math.log(sigma) + D / 2 * math.log(2 * math.pi))
        assert d.recon.formula == pytest.approx(-d.error_term - d.log_norm)  # −log p(x|z) = error + constant
        assert d.loss == pytest.approx(d.error_term + d.kl.formula + d.log_norm)
    else:
        assert d.error_term is None and d.error_term_with_pi is None
        assert d.log_mean_likelihood <= 0  # a probability of a binary image


def test_jensen_sides_are_the_estimators_own_numbers(tiny_dataset):
    model = tiny_model()
    x = tiny_dataset.test_images("bernoulli")[:1]
    d = theory.derivation(model, x[0], num_samples=400, seed=5)
    est = estimators.estimate_log_px(model, x, k=400, seed=5)
    assert d.log_mean_w == pytest.approx(float(est.log_px[0]), abs=1e-6)  # log (1/S) Σ w
    assert d.elbo.tfd == pytest.approx(float(est.elbo[0]), abs=1e-4)  # same draws, exact KL
    assert d.log_mean_w >= d.mean_log_w  # Jensen
    assert d.mean_log_w == pytest.approx(d.recon.tfd - d.kl_mc)  # the ELBO with the KL sampled


def test_reference_is_exact_for_a_linear_gaussian_model(tiny_dataset):
    model = tiny_model(likelihood="gaussian", sigma=0.05, decoder="linear")
    x = tiny_dataset.test_images("gaussian")[0]
    ref = theory.reference_log_px(model, x)
    assert ref.method == "exact"
    assert ref.log_px == pytest.approx(float(exact.exact_log_px(model, x[None])[0]))
    # a decoder that puts its mean on x (W = 0, b = x): p(x) = N(x; x, σ²I), a density far above 1
    layer = model.decoder.get_layer("dec_out")
    layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
    layer.bias.assign(x)
    peak = theory.reference_log_px(model, x).log_px
    assert peak == pytest.approx(-64 / 2 * math.log(2 * math.pi * 0.05 ** 2), rel=1e-5)
    assert peak > 0  # 'log p(x) ≤ 0' holds for probabilities, not for densities


# -- the true posterior on the shipped 2-D run -------------------------------------------------------------
@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_grid_kl_equals_the_estimators_gap_where_q_fits(two_d):
    model, x = two_d
    g = exact.grid_posterior(model, x[0], n=101, max_n=201, tol=1e-2)
    est = estimators.estimate_log_px(model, x[:1], k=5000, seed=0)
    gap = float(est.log_px[0] - est.elbo[0])
    assert abs(g.kl_q_posterior - gap) < 0.1, (g.kl_q_posterior, gap)
    assert g.kl_q_posterior > 0
    assert exact.mass_within(g.z1, g.z2, g.log_posterior, g.q_loc, g.q_scale) > 0.5


def test_image_5_posterior_has_a_mode_q_misses(two_d):
    """Test image #5 (a trouser): q sits on a weak mode, the posterior's mass is elsewhere. Importance
    sampling from q never visits it, so its log p(x) and gap fall short of the grid's by more than 10 nats."""
    model, x = two_d
    g = exact.grid_posterior(model, x[5], n=101, max_n=201, tol=1e-2)
    est = estimators.estimate_log_px(model, x[5:6], k=5000, seed=0)
    assert g.log_px - float(est.log_px[0]) > 10
    assert g.kl_q_posterior - float(est.gap[0]) > 10
    modes = exact.posterior_modes(g.z1, g.z2, g.log_posterior)
    assert len(modes) >= 2
    main = modes[0][0]
    assert np.linalg.norm((main - g.q_loc) / g.q_scale) > 5  # the main mode lies far outside q
    assert exact.mass_within(g.z1, g.z2, g.log_posterior, g.q_loc, g.q_scale) < 1e-3


def test_posterior_modes_and_mass_on_a_known_grid():
    z = np.linspace(-4, 4, 161)
    g1, g2 = np.meshgrid(z, z)
    bump = lambda c, s: -0.5 * ((g1 - c[0]) ** 2 + (g2 - c[1]) ** 2) / s ** 2  # noqa: E731
    lp = np.logaddexp(bump((-2, 0), 0.4) + math.log(0.7), bump((2, 1), 0.4) + math.log(0.3))
    modes = exact.posterior_modes(z, z, lp)
    assert len(modes) == 2
    np.testing.assert_allclose(modes[0][0], [-2, 0], atol=0.06)
    np.testing.assert_allclose(modes[1][0], [2, 1], atol=0.06)
    # a single Gaussian keeps 1 − e^(−2) of its mass inside its own 2σ ellipse
    single = -0.5 * ((g1 / 0.5) ** 2 + (g2 / 0.8) ** 2)
    assert exact.mass_within(z, z, single, (0, 0), (0.5, 0.8), 2.0) == pytest.approx(1 - math.exp(-2), abs=0.01)


# -- the prior as a proposal ---------------------------------------------------------------------------
def test_prior_proposal_is_worth_a_draw_or_two(default):
    model, x = default
    study = theory.proposal_study(model, x[0], ks=(1, 10, 1000), repeats=3)
    prior, post = study.summary("prior"), study.summary("posterior")
    assert prior["ess_mean"][-1] < 3 < 5 < post["ess_mean"][-1]
    assert post["std"][-1] < prior["std"][-1]
    # a repeat's estimate with its first k draws is estimate_log_px with that k and seed
    est = estimators.estimate_log_px(model, x[:1], k=1000, proposal="prior", seed=2)
    assert study.log_px["prior"][2, -1] == pytest.approx(float(est.log_px[0]), abs=1e-6)
    assert study.ess["prior"][2, -1] == pytest.approx(float(est.ess[0]), rel=1e-6)
    assert np.all(study.ess["prior"][:, 0] == 1)  # one draw is worth one draw


# -- IWAE training ---------------------------------------------------------------------------------------
@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_an_iwae_trained_run_has_l_k_above_its_elbo(tiny_dataset):
    from vae_tf.train import Trainer

    cfg = Config(dataset="fashion_mnist", latent_dim=2, hidden=(32,), epochs=3, batch_size=64,
                 objective="iwae", mc_samples=5, learning_rate=3e-3)
    result = Trainer(cfg, tiny_dataset).fit()
    x = tiny_dataset.train_images("bernoulli")[:256]
    est = estimators.estimate_log_px(result.model, x, k=500, seed=1)
    curve = dict(zip(est.iwae_curve()["k"], est.iwae_curve()["mean"], strict=True))
    elbo = float(np.mean(est.elbo))
    assert curve[5] > elbo + 0.1, (curve[5], elbo)
    assert curve[5] < float(np.mean(est.log_px)) + 0.05
    assert result.history["epochs"][-1]["test_elbo"] > result.history["epochs"][0]["test_elbo"] - 1


# -- figures ---------------------------------------------------------------------------------------------
def test_posterior_map_keeps_its_traces_and_click_targets():
    z = np.linspace(-1, 1, 21)
    lp = -0.5 * (np.meshgrid(z, z)[0] ** 2 + np.meshgrid(z, z)[1] ** 2)
    lp -= np.log(np.exp(lp).sum() * (z[1] - z[0]) ** 2)
    a = plots.posterior_map(z, z, lp, (0.1, 0.2), (0.3, 0.4), samples=None)
    b = plots.posterior_map(z, z, lp, (0.1, 0.2), (0.3, 0.4), samples=np.zeros((5, 2)),
                                  marks=[("q", (0.1, 0.2))], clicked=[("C1", (0.5, 0.5))], view="log")
    assert [t.name for t in a.data] == [t.name.replace("5 samples", "0 samples") for t in b.data]
    heat = b.data[0]
    assert heat.type == "heatmap" and np.max(heat.z) == pytest.approx(lp.max())
    assert np.min(heat.z) >= lp.max() - plots.LOG_FLOOR
    ring = [t for t in b.data if t.name == "q(z|x), 1σ"][0]
    np.testing.assert_allclose(max(ring.x), 0.1 + 0.3, atol=1e-9)
    np.testing.assert_allclose(max(ring.y), 0.2 + 0.4, atol=1e-3)
    target = b.data[-1]
    assert len(target.customdata) == len(z[::8]) ** 2
    # the click targets carry their z (reading a selection event of them: tests/test_widgets.py)
    click_grid = np.stack([g.ravel() for g in np.meshgrid(z[::8], z[::8])], 1)
    np.testing.assert_allclose(np.asarray(target.customdata), click_grid)


def test_latent_points_carry_test_indices():
    pts = np.arange(20, dtype=float).reshape(10, 2)
    labels = np.array([0, 1] * 5)
    fig = plots.latent_points(pts, labels, ("a", "b"), selected=[3])
    assert sorted(np.concatenate([t.customdata for t in fig.data[:2]]).tolist()) == list(range(10))
    assert fig.data[-1].name == "shown beside" and list(fig.data[-1].x) == [6.0]


def test_manifold_puts_large_z2_on_top():
    imgs = np.zeros((2, 3, 2, 2))
    imgs[1, 0] = 1.0  # row 1 decodes the larger u2, column 0 the smallest u1
    fig = plots.manifold(imgs, [-1, 0, 1], [-1, 1])
    big = plots.picture_pixels(fig.data[0])
    assert fig.data[0].type == "image" and big.shape == (4, 6)
    assert big[:2, :2].min() == 1 and big[2:].max() == 0  # top-left block (reversed y: row 0 drawn at top)


def test_compare_curves_one_legend_entry_per_run_and_kind():
    h = {"epochs": [{"epoch": 1, "test_elbo": -100, "test_recon": -90, "test_kl": 10}],
         "steps": [[i, -100 + i, -90 + i, 10] for i in range(1, 30)]}
    fig = plots.compare_curves({"a": h, "b": h}, {"a": 10, "b": 10})
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == ["a (train)", "a (test)", "b (train)", "b (test)"]
    assert len(fig.data) == 12
