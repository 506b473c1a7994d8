"""The pages that explore a trained run, through AppTest: True posterior, Theory, Why not sample the prior?, Latent
map and Compare runs, each asserted on the numbers it shows and the data it draws, checked against the
library; and the links that reopen a view. Runs live in a temporary copy of the shipped ones."""
import math

import numpy as np
import pytest
from conftest import APP, SHIPPED, make_lab, open_app, texts
from plotly_spec import charts, traces
from streamlit.testing.v1 import AppTest

from vae_tf import plots


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = make_lab(tmp_path_factory)
    mp = pytest.MonkeyPatch()
    mp.setenv("VAE_LAB_CHECKPOINTS", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def runs(lab, fashion):
    from vae_tf.runs import load_run

    return {name: load_run(lab / name) for name in SHIPPED}


def open_page(page: str, run: str | None = None, params: dict | None = None):
    """The app with the active run and URL parameters given (as session state, not picked), then `page`."""
    return open_app(page=page, session={"run.active": run} if run else None, params=params, check=True)


def metric(at, label_start: str) -> float:
    m = [m for m in at.metric if m.label.startswith(label_start)]
    assert m, [m.label for m in at.metric]
    return float(m[0].value.split()[0])


# -- True posterior -----------------------------------------------------------------------------------------
def test_posterior_page_offers_the_2d_run_for_another_latent(lab):
    at = open_page("pages/posterior.py", run="fashion-default")
    # the shipped 2-D run's posterior at once, labelled, and the active run of every other page unchanged
    assert "20-D latent" in texts(at.info) and "fashion-2d" in texts(at.info) and at.get("plotly_chart")
    assert at.session_state["run.active"] == "fashion-default"
    at.button(key="posterior.use2d").click().run()
    assert not at.exception
    assert at.session_state["run.active"] == "fashion-2d"
    assert at.get("plotly_chart")


def test_posterior_page_draws_p_and_q_and_its_kl_equals_the_gap(lab, runs, fashion):
    from vae_tf import exact

    at = open_page("pages/posterior.py", run="fashion-2d")
    model, x = runs["fashion-2d"].model, fashion.test_images("bernoulli")
    g = exact.grid_posterior(model, x[0], n=101, max_n=201, tol=1e-2)
    kl, gap = metric(at, "grid KL"), metric(at, "estimated gap")
    assert kl == pytest.approx(g.kl_q_posterior, abs=1e-3)
    assert abs(kl - gap) < 0.1  # q fits image 0: the grid's KL and the estimators' gap agree
    assert "agree within" in texts(at.success)
    table = at.dataframe[0].value
    assert table["grid"][0] == pytest.approx(g.log_px, abs=1e-6)

    fig = charts(at)[0]
    heat = fig["data"][0]
    assert heat["type"] == "heatmap"
    dens = np.asarray(heat["z"])
    cell = (heat["x"][1] - heat["x"][0]) * (heat["y"][1] - heat["y"][0])
    assert dens.sum() * cell == pytest.approx(1.0, abs=1e-3)  # p(z|x) is normalised on the grid
    ring = traces(fig, "q(z|x), 2σ")[0]
    np.testing.assert_allclose(max(ring["x"]), g.q_loc[0] + 2 * g.q_scale[0], rtol=1e-4)
    assert len(traces(fig, "20 samples")[0]["x"]) == 20
    marks = traces(fig, "marked points")[0]
    assert marks["text"][0] == "q" and marks["x"][0] == pytest.approx(g.q_loc[0], abs=1e-6)
    decoded = charts(at)[1]
    assert len(plots.grid_images(decoded)) == 1 + len(marks["text"])


def test_posterior_page_shows_where_q_misses_the_mode(lab):
    """Image #5 of fashion-2d: q sits on a weak mode, so sampling from q misses most of p(x); the page
    says so instead of claiming agreement."""
    at = open_page("pages/posterior.py", run="fashion-2d", params={"page.posterior.image": "5"})
    assert at.number_input(key="page.posterior.image").value == 5
    kl, gap = metric(at, "grid KL"), metric(at, "estimated gap")
    assert kl - gap > 10
    assert "disagree" in texts(at.warning) and "mode-seeking" in texts(at.warning)
    assert "M2" in texts(at.caption)


# -- Theory -------------------------------------------------------------------------------------------------
def test_theory_page_substitutes_the_runs_own_numbers(lab, runs, fashion):
    from vae_tf import estimators, theory

    at = open_page("pages/theory.py", run="fashion-default", params={"page.theory.image": "3"})
    model, x = runs["fashion-default"].model, fashion.test_images("bernoulli")
    d = theory.derivation(model, x[3], num_samples=5000, seed=0)
    est = estimators.estimate_log_px(model, x[3:4], k=5000, seed=0)
    latex = " ".join(e.value for e in at.latex)
    for v in (d.elbo.formula, d.recon.formula, d.kl.formula, float(est.log_px[0]), d.mean_log_w):
        assert f"{v:.3f}" in latex, v
    assert f"{float(est.log_px[0] - d.elbo.formula):.3f}" in latex  # the KL to the true posterior, the gap
    terms = at.dataframe[0].value
    assert list(terms["term"]) == ["E_q[log p(x|z)]", "KL(q(z|x) ‖ p(z))", "ELBO"]
    assert (terms["|difference|"] < 1e-3).all()
    np.testing.assert_allclose(terms["formula"], [d.recon.formula, d.kl.formula, d.elbo.formula], atol=1e-9)
    notes = texts(at.markdown)
    assert f"{d.kl_without_half:.3f}" in notes  # the forgotten ½
    # the linear-Gaussian run's mean exact log p(x) over the test set is positive, beside PPCA's optimum
    from vae_tf import exact

    linear, xg = runs["fashion-linear-gaussian"].model, fashion.test_images("gaussian")
    mean_exact = float(np.mean(np.concatenate([exact.exact_log_px(linear, xg[i:i + 2000])
                                               for i in range(0, len(xg), 2000)])))
    assert mean_exact > 0 and f"{mean_exact:+.2f}" in notes
    ppca = exact.ppca_ml(fashion.train_images("gaussian"), linear.config.latent_dim).log_px(xg).mean()
    assert f"{ppca:+.2f}" in notes and "probabilistic PCA" in notes


def test_theory_page_with_a_gaussian_decoder(lab, runs, fashion):
    from vae_tf import exact as closed_form
    from vae_tf import theory

    at = open_page("pages/theory.py", run="fashion-linear-gaussian")
    model, x = runs["fashion-linear-gaussian"].model, fashion.test_images("gaussian")
    d = theory.derivation(model, x[0], num_samples=5000, seed=0)
    latex = " ".join(e.value for e in at.latex)
    exact = float(closed_form.exact_log_px(model, x[:1])[0])
    assert f"{exact:.3f}" in latex and exact > 0
    for v in (d.loss, d.error_term, d.log_norm):
        assert f"{v:.3f}" in latex
    assert d.loss == pytest.approx(d.error_term + d.kl.formula + d.log_norm)
    assert f"{d.error_term_with_pi:.3f}" in texts(at.markdown)


# -- Why not sample the prior? --------------------------------------------------------------------------------
def test_prior_page_shows_an_ess_near_one_for_the_prior(lab, runs, fashion):
    at = open_page("pages/prior-sampling.py", run="fashion-default",
                   params={"page.prior.repeats": "4", "page.prior.k": "1000"})
    table = at.dataframe[0].value
    prior, post = table.iloc[0], table.iloc[1]
    assert prior["proposal"] == "prior p(z)" and prior["k"] == 1000
    assert prior["mean ESS"] < 3 and post["mean ESS"] > 5
    assert prior["sd over repeats"] > 3 * post["sd over repeats"]
    est = __import__("vae_tf.estimators", fromlist=["x"]).estimate_log_px(
        runs["fashion-default"].model, fashion.test_images("bernoulli")[:1], k=1000, proposal="prior", seed=0)
    fig = charts(at)[0]
    each = traces(fig, "prior p(z): each repeat")[0]
    assert len(each["y"]) == 4 * 7  # 4 repeats × k in 1, 3, 10, 30, 100, 300, 1000
    assert float(est.log_px[0]) == pytest.approx(each["y"][6], abs=1e-6)  # repeat 0, k = 1000
    assert any(t["name"].startswith("ESS = k") for t in fig["data"])


# -- Latent map -------------------------------------------------------------------------------------------
def test_latent_map_colours_codes_by_class_and_decodes_a_grid(lab, runs, fashion):
    at = open_page("pages/latent-map.py", run="fashion-2d", params={"page.latent.n": "1000", "page.latent.side": "6"})
    scatter, shown, manifold = charts(at)
    classes = [t for t in scatter["data"] if t["name"] != "shown beside"]  # SVG or WebGL, by the count
    assert len(classes) == 10
    idx = sorted(i for t in classes for i in t["customdata"])
    assert idx == list(range(1000))
    z = runs["fashion-2d"].model.encode_mean(fashion.test_images("bernoulli")[:1000]).numpy()
    first = classes[0]
    np.testing.assert_allclose(first["x"], z[first["customdata"], 0], atol=1e-5)  # the latent itself, 2-D
    assert len(traces(scatter, "shown beside")[0]["x"]) == 10  # one typical image per class
    assert plots.picture_pixels(manifold["data"][0]).shape == (6 * 28, 6 * 28)


def test_latent_map_of_a_20d_run_is_a_pca_projection(lab):
    at = open_page("pages/latent-map.py", run="fashion-default", params={"page.latent.n": "500"})
    scatter = charts(at)[0]
    assert scatter["layout"]["xaxis"]["title"]["text"].startswith("PC1")
    assert "principal axes" in texts(at.markdown)


# -- Compare runs -------------------------------------------------------------------------------------------
def test_compare_page_draws_every_runs_curves_and_a_vae_beside_an_iwae(lab):
    from ui import cache, estimates, server

    at = open_page("pages/compare.py", run="fashion-2d",
                   params={"page.compare.runs": ["fashion-2d", "fashion-linear-gaussian"]})
    assert at.multiselect(key="page.compare.runs").value == ["fashion-2d", "fashion-linear-gaussian"]
    assert "not on one scale" in texts(at.warning)
    curves = charts(at)[0]
    legend = [t["name"] for t in curves["data"] if t.get("showlegend", True)]
    assert legend == ["fashion-2d (train)", "fashion-2d (test)", "fashion-linear-gaussian (train)",
                      "fashion-linear-gaussian (test)"]
    table = at.dataframe[0].value
    assert list(table["run"]) == ["fashion-2d", "fashion-linear-gaussian"]
    assert table["test ELBO (all)"][1] > 0  # a Gaussian density's ELBO

    # the shipped VAE and IWAE, trained alike, side by side
    assert at.selectbox(key="page.compare.pair.a").value == "fashion-vae5"
    assert at.selectbox(key="page.compare.pair.b").value == "fashion-iwae5"
    at.button(key="page.compare.pair.go").click().run()
    jobs = [estimates.job(name) for name in server.IWAE_PAIR]
    assert all(j is not None and j.finished.wait(180) for j in jobs)
    at.run()
    assert not at.exception
    frames = [d.value for d in at.dataframe]
    bounds = next(f for f in reversed(frames) if "L_5" in f.columns).set_index("run")
    lp = "log p(x), K = 1000"
    # the difference image by image, with its paired standard error
    diff = frames[-1].set_index("run")
    assert diff.loc["fashion-iwae5", "minus"] == "fashion-vae5" and diff.loc["fashion-iwae5", "images"] == 200
    assert diff.loc["fashion-iwae5", "Δ log p(x)"] == pytest.approx(
        bounds.loc["fashion-iwae5", lp] - bounds.loc["fashion-vae5", lp], abs=1e-6)
    assert 0 < diff.loc["fashion-iwae5", "± Δ log p(x)"] < 1  # paired: far below either run's spread over images
    assert "paired standard error" in texts(at.caption)
    for name in server.IWAE_PAIR:
        row = bounds.loc[name]
        assert row["ELBO"] <= row["L_5"] <= row["L_50"] <= row[lp] + 1e-9
        assert row["gap"] == pytest.approx(row[lp] - row["ELBO"])
    # trained on L_5, the IWAE's encoder need not match the posterior: a lower ELBO and a wider gap
    assert bounds.loc["fashion-iwae5", "ELBO"] < bounds.loc["fashion-vae5", "ELBO"]
    assert bounds.loc["fashion-iwae5", "gap"] > 1.5 * bounds.loc["fashion-vae5", "gap"]
    lines = {t["name"]: t for t in charts(at)[-1]["data"]}
    assert lines["fashion-iwae5"]["y"][-1] == pytest.approx(bounds.loc["fashion-iwae5", lp])
    assert "An IWAE maximises L_k" in texts(at.markdown)
    for j in jobs:
        cache.job_registry().discard(j.key)


# -- links --------------------------------------------------------------------------------------------------
def test_a_link_reopens_the_run_the_hyperparameters_and_a_pages_choices(lab):
    link = {"run.active": "fashion-2d", "hp.latent_dim": "2", "hp.likelihood": "gaussian", "hp.sigma_learned": "true",
            "hp.hidden": "64,32", "hp.learning_rate": "0.0003", "page.posterior.image": "5",
            "page.posterior.view": "log density", "page.posterior.zoom": "the prior (±4)"}
    at = open_page("pages/posterior.py", params=link)
    assert at.selectbox(key="run.active").value == "fashion-2d"
    assert at.number_input(key="hp.latent_dim").value == 2
    assert at.radio(key="hp.likelihood").value == "gaussian" and at.toggle(key="hp.sigma_learned").value
    assert at.text_input(key="hp.hidden").value == "64,32"
    assert at.number_input(key="hp.learning_rate").value == pytest.approx(3e-4)
    assert at.number_input(key="page.posterior.image").value == 5
    assert not [w for w in at.warning if "link" in w.value]  # every setting was used
    assert {k: at.query_params[k] for k in link} == link  # and stays in the URL
    fig = charts(at)[0]
    assert min(fig["data"][0]["x"]) == pytest.approx(-4)  # the prior's extent
    heat = np.asarray(fig["data"][0]["z"])
    assert heat.max() - heat.min() == pytest.approx(15, abs=1e-6)  # the log view's top 15 nats
    assert metric(at, "grid KL") > 10  # image 5 of the 2-D run


def test_a_stale_link_falls_back_to_the_defaults_with_a_notice(lab):
    link = {"run.active": "a-deleted-run", "hp.latent_dim": "-3", "hp.likelihood": "poisson", "colour": "red",
            "page.posterior.image": "99999", "page.posterior.view": "bogus"}
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in link.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception
    notice = texts(at.warning)
    for key in ("run.active=a-deleted-run", "hp.likelihood=poisson", "colour is not a setting"):
        assert key in notice, (key, notice)
    assert at.selectbox(key="run.active").value == "fashion-default"
    assert at.radio(key="hp.likelihood").value == "bernoulli"
    # a number out of its range reaches its widget as given and is named there, with Train blocked (as typed)
    assert at.number_input(key="hp.latent_dim").value == -3
    assert "latent_dim must be between 1 and 256; got -3" in texts(at.sidebar.error)
    assert at.button(key="train.go").disabled
    for key in ("run.active", "hp.likelihood", "colour"):
        assert key not in at.query_params
    # the page's own settings are checked when the page is first drawn
    at.selectbox(key="run.active").set_value("fashion-2d").run()
    at.switch_page("pages/posterior.py").run()
    assert not at.exception
    notice = texts(at.warning)
    assert "page.posterior.image=99999" in notice and "page.posterior.view=bogus" in notice
    assert at.number_input(key="page.posterior.image").value == 0
    assert math.isfinite(metric(at, "grid KL"))
    at.run()  # said once
    assert "page.posterior.image=99999" not in texts(at.warning)
