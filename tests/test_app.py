"""The Streamlit app through streamlit.testing.v1.AppTest: every page shows real results of the shipped
runs on first open, the sidebar keeps its values across pages, training saves a new active run, bad
input gives an error message. Runs live in a temporary copy (VAE_LAB_CHECKPOINTS): the repository's
checkpoints/ is never written."""
import io
import json
import shutil
import threading

import numpy as np
import pytest
from conftest import finish_training, make_lab, texts
from conftest import open_app as shared_open_app
from plotly_spec import charts, traces
from streamlit.testing.v1 import AppTest

from vae_tf import plots
from vae_tf.config import Config

SHIPPED = ("fashion-default", "fashion-2d", "fashion-linear-gaussian")
PAGE_FILES = [f"pages/{name}.py" for name in ("reconstructions", "interpolation", "posterior", "theory",
                                              "prior-sampling", "latent-map", "latent", "compare", "train")]
# enough steps to beat a model that ignores its input (a run that does not is never made active)
TINY = dict(max_train_images=4096, epochs=1, hidden="32", batch_size=64, latent_dim=2, learning_rate=3e-3)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, fashion):
    """A checkpoints root with copies of the shipped runs and a tiny 1-D run, and an uploads folder."""
    from vae_tf.train import train

    root = make_lab(tmp_path_factory, SHIPPED)
    train(Config(latent_dim=1, hidden=(32,), epochs=1, max_train_images=512, seed=1), fashion, root / "tiny-1d")
    uploads = tmp_path_factory.mktemp("uploads")
    mp = pytest.MonkeyPatch()
    mp.setenv("VAE_LAB_CHECKPOINTS", str(root))
    mp.setenv("VAE_LAB_UPLOADS", str(uploads))
    yield root, uploads
    mp.undo()
    from ui import cache

    cache.job_registry().stop_all()  # no background estimate may outlive the tests


def open_app(page: str | None = None) -> AppTest:
    return shared_open_app(page=page, check=True)


def xtitle(spec: dict) -> str:
    return spec["layout"].get("xaxis", {}).get("title", {}).get("text", "")




def history(root, name):
    return json.loads((root / name / "history.json").read_text())


# -- first open, every page ----------------------------------------------------------------------------
def test_train_page_shows_the_shipped_run(lab):
    root, _ = lab
    at = open_app()
    assert at.title[0].value == "Train a VAE"
    assert at.selectbox(key="run.active").value == "fashion-default"
    h = history(root, "fashion-default")
    final = h["epochs"][-1]
    assert at.sidebar.metric[0].value == f"{final['test_elbo']:.1f}"
    (curves,) = charts(at)
    raw = traces(curves, "train, per step")
    assert len(raw) == 3 and len(raw[0]["y"]) == len(h["steps"])
    np.testing.assert_allclose(raw[0]["y"], [s[1] for s in h["steps"]])
    from streamlit.runtime.scriptrunner import script_runner

    from ui import script_runs

    assert script_runner._clean_problem_modules is script_runs._clean_problem_modules  # app.py trimmed the run's end
    test = traces(curves, "test set")[0]
    np.testing.assert_allclose(test["y"], [e["test_elbo"] for e in h["epochs"]])
    table = at.dataframe[0].value
    assert set(SHIPPED) <= set(table["name"])
    row = table.set_index("name").loc["fashion-default"]
    assert row["test_elbo"] == pytest.approx(final["test_elbo"])
    # every config field has a widget with its tooltip, which gives the library's range (the widget itself has
    # none: a value out of range is named and blocks Train rather than being clamped)
    latent = at.number_input(key="hp.latent_dim")
    assert latent.value == 20 and "latent" in latent.help and "Allowed: 1 to 256" in latent.help
    assert at.text_input(key="hp.hidden").value == "512,256"


def test_reconstructions_page_shows_images_elbos_and_prior_samples(lab, fashion):
    at = open_app("pages/reconstructions.py")
    grid, prior = charts(at)
    heat = plots.grid_images(grid)
    assert len(heat) == 32  # 16 test images and 16 reconstructions
    titles = [a["text"] for a in grid["layout"]["annotations"]]
    first = int(titles[0].split("<br>")[0].lstrip("#"))
    x = fashion.test_images("bernoulli")[first].reshape(28, 28)
    np.testing.assert_allclose(heat[0], x, atol=0.5 / 255 + 1e-9)  # the test image as the model sees it, in 8 bits
    recon = heat[8]  # the row under it
    assert recon.shape == (28, 28) and recon.min() >= 0 and recon.max() <= 1 and recon.std() > 0.05
    assert titles[8].startswith("ELBO -") and "KL" in titles[8]
    elbos = [float(t.split("<br>")[0].split()[1]) for t in titles if t.startswith("ELBO")]
    assert len(elbos) == 16 and all(-600 < e < -50 for e in elbos)
    mean = float(at.metric[0].value.split()[0])
    assert mean == pytest.approx(np.mean(elbos), abs=0.1)
    assert len(plots.grid_images(prior)) == 16
    # decoding a sample z ~ q(z|x) instead of the mean changes the reconstructions, not the test images
    at.radio(key="page.rec.source").set_value("a sample z ~ q(z|x)").run()
    sampled = plots.grid_images(charts(at)[0])
    assert (sampled[0] == heat[0]).all() and not (sampled[8] == heat[8]).all()
    # by class: 3 of each chosen class, grouped
    at.radio(key="page.rec.mode").set_value("by class").run()
    at.multiselect(key="page.rec.classes").set_value([7, 1]).run()
    at.slider(key="page.rec.per_class").set_value(3).run()
    titles = [a["text"] for a in charts(at)[0]["layout"]["annotations"] if a["text"].startswith("#")]
    assert [t.split("<br>")[1] for t in titles] == ["Sneaker"] * 3 + ["Trouser"] * 3


def test_the_prewarm_leaves_no_first_visit_anything_to_compute(lab):
    """ui.prewarm computes each page's default answers, argument for argument, before anyone asks: after it, a
    visit to every page computes no answer but the JSON of the runs it lists (a page whose defaults drift from
    the prewarm's would compute its own again, and its first visit would be slow again)."""
    from ui import answers, prewarm

    root, _ = lab
    at = open_app()
    prewarm.first_visits(root.resolve())
    held = set(answers.answer_cache().keys())
    for page in PAGE_FILES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.message for e in at.exception])
    computed = {key[0] for key in set(answers.answer_cache().keys()) - held}
    assert computed <= {"run_summary", "run_history", "run_problem"}, computed


def test_interpolation_page_shows_both_paths_and_the_latent_map(lab):
    at = open_app("pages/interpolation.py")
    ends, linear, spherical, *rest = charts(at)
    norms = next(c for c in rest if c["layout"]["yaxis"]["title"]["text"] == "‖z(t)‖")
    latent_map = next(c for c in rest if c is not norms)
    lin_strip, sph_strip = plots.grid_images(linear), plots.grid_images(spherical)
    assert len(lin_strip) == len(sph_strip) == 10
    for end in (0, -1):  # both paths run from z_A to z_B
        np.testing.assert_allclose(lin_strip[end], sph_strip[end], atol=1 / 255)
    lin, sph = (np.array(traces(norms, k)[0]["y"]) for k in ("linear", "spherical"))
    assert lin[0] == pytest.approx(sph[0]) and lin[-1] == pytest.approx(sph[-1])
    assert lin[5] < min(lin[0], lin[-1]) and np.allclose(np.diff(sph), np.diff(sph)[0])  # slerp: length linear
    points = sum(len(t["x"]) for t in latent_map["data"] if t.get("mode") == "markers" and t["name"] != "ends A, B")
    assert points == 3000
    assert len(traces(latent_map, "spherical path")[0]["x"]) == 10
    assert "PC1" in xtitle(latent_map)


def test_interpolation_of_a_1d_latent_says_the_map_needs_two_dimensions(lab):
    at = open_app()
    at.selectbox(key="run.active").set_value("tiny-1d").run()
    at.switch_page("pages/interpolation.py").run()
    assert not at.exception
    assert "at least 2 latent dimensions" in texts(at.info)
    axis = next(c for c in charts(at) if "one dimension" in xtitle(c))
    assert len(traces(axis, "linear path")[0]["x"]) == 10
    assert sum(len(t["x"]) for t in axis["data"] if t.get("mode") == "markers") == 3000


def test_a_run_on_mnist_offline_explains_and_points_to_fashion_mnist(lab, monkeypatch):
    from vae_tf import data

    root, _ = lab
    if not (root / "mnist-run").exists():  # a run whose data set is MNIST, with no internet to fetch it
        shutil.copytree(root / "fashion-default", root / "mnist-run")
        cfg = json.loads((root / "mnist-run" / "config.json").read_text())
        (root / "mnist-run" / "config.json").write_text(json.dumps({**cfg, "dataset": "mnist"}))

    def offline():
        raise data.DataError("MNIST could not be downloaded (no internet connection here?).")

    monkeypatch.setattr(data, "load_mnist", offline)
    at = open_app()
    at.selectbox(key="run.active").set_value("mnist-run").run()
    at.switch_page("pages/reconstructions.py").run()
    assert not at.exception
    message = texts(at.error)
    assert "MNIST could not be downloaded" in message and "Pick a Fashion-MNIST run" in message
    assert not at.get("plotly_chart")


def test_log_px_page_shows_the_bound_the_estimate_and_the_gap(lab):
    at = open_app("pages/log-px.py")
    scatter, hist, iwae = charts(at)
    pts = traces(scatter, "importance sampling")[0]
    log_px, elbo = np.array(pts["x"]), np.array(pts["y"])
    assert len(log_px) == 200
    assert np.all(elbo <= log_px + 1e-6)  # the ELBO is a lower bound, image by image
    line = traces(scatter, "y = x")[0]
    assert line["x"] == line["y"]
    np.testing.assert_allclose(hist["data"][0]["x"], log_px - elbo, rtol=1e-6)
    curve = iwae["data"][0]
    assert curve["x"] == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] and iwae["layout"]["xaxis"]["type"] == "log"
    assert curve["y"][0] == pytest.approx(elbo.mean(), abs=0.05)  # L_1 is the ELBO
    assert np.all(np.diff(curve["y"]) > -0.05) and curve["y"][-1] == pytest.approx(log_px.mean(), abs=1e-3)
    assert len(curve["error_y"]["array"]) == 10
    summary = at.table[0].value
    assert float(str(summary.iloc[1, 1])) == pytest.approx(log_px.mean(), abs=1e-3)
    assert [b.label for b in at.get("download_button")] == ["Summary (CSV)", "Per image (CSV)"]
    # a page switch and back is answered from the cache, not recomputed
    seconds = at.metric[3].value
    at.switch_page("pages/train.py").run()
    at.switch_page("pages/log-px.py").run()
    assert at.metric[3].value == seconds and not at.get("status")


def test_log_px_page_draws_the_exact_answer_of_a_linear_gaussian_run(lab):
    at = open_app()
    at.selectbox(key="run.active").set_value("fashion-linear-gaussian").run()
    at.switch_page("pages/log-px.py").run()
    at.number_input(key="page.logpx.n").set_value(50)
    at.get("form_submit_button")[0].click().run()
    assert not at.exception
    scatter, hist, iwae = charts(at)
    est, exact = traces(scatter, "importance sampling")[0], traces(scatter, "exact log p(x)")[0]
    assert len(exact["x"]) == 50
    error = np.array(est["x"]) - np.array(exact["x"])
    assert np.median(np.abs(error)) < 0.5  # IS agrees with the closed form (for most images: q is not p(z|x))
    assert np.all(np.array(exact["y"]) <= np.array(exact["x"]) + 1e-3)
    assert traces(iwae, "exact log p(x)")
    assert "exact log p(x) (closed form)" in list(at.table[0].value["quantity"])


def test_log_px_page_adds_the_grid_answer_for_a_2d_latent(lab):
    from ui import cache

    at = open_app()
    at.selectbox(key="run.active").set_value("fashion-2d").run()
    at.switch_page("pages/log-px.py").run()
    at.number_input(key="page.logpx.n").set_value(20)
    at.select_slider(key="page.logpx.k").set_value(100)
    at.number_input(key="page.logpx.grid").set_value(2)
    at.get("form_submit_button")[0].click().run()
    grid_jobs = [j for k, j in cache.job_registry()._jobs.items() if k[0] == "grid" and k[1].name == "fashion-2d"]
    assert grid_jobs and grid_jobs[-1].finished.wait(120)
    at.run()
    assert not at.exception
    scatter = charts(at)[0]
    grid = traces(scatter, "grid log p(x)")[0]
    est = traces(scatter, "importance sampling")[0]
    assert len(grid["x"]) == 2
    np.testing.assert_allclose(grid["x"], est["x"][:2], atol=0.5)  # the grid integral and IS agree
    assert any("grid log p(x)" in q for q in at.table[0].value["quantity"])


def test_log_px_page_integrates_a_1d_latent_by_quadrature(lab):
    from ui import cache

    at = open_app()
    at.selectbox(key="run.active").set_value("tiny-1d").run()
    at.switch_page("pages/log-px.py").run()
    at.number_input(key="page.logpx.n").set_value(20)
    at.select_slider(key="page.logpx.k").set_value(100)
    at.number_input(key="page.logpx.grid").set_value(2)
    at.get("form_submit_button")[0].click().run()
    grid_jobs = [j for k, j in cache.job_registry()._jobs.items() if k[0] == "grid" and k[1].name == "tiny-1d"]
    assert grid_jobs and grid_jobs[-1].finished.wait(120)
    at.run()
    assert not at.exception
    scatter, hist = charts(at)[:2]
    line = traces(scatter, "quadrature log p(x)")[0]
    est = traces(scatter, "importance sampling")[0]
    # the integral is exact; IS with K = 100 from a one-epoch encoder is at most a little above it, often below
    diff = np.array(line["x"]) - np.array(est["x"][:2])
    assert np.all(diff > -0.5) and np.all(diff < 5), diff
    assert traces(hist, "quadrature KL")
    assert any("quadrature log p(x), first 2 images (2 of 2 converged)" in q for q in at.table[0].value["quantity"])


# -- the sidebar ----------------------------------------------------------------------------------------------
def test_sidebar_and_page_values_survive_page_switches(lab):
    at = open_app()
    at.number_input(key="hp.latent_dim").set_value(7)
    at.text_input(key="hp.hidden").set_value("64,32")
    at.radio(key="hp.likelihood").set_value("gaussian").run()
    at.toggle(key="hp.sigma_learned").set_value(True)  # enabled only for a Gaussian likelihood
    at.selectbox(key="run.active").set_value("fashion-2d").run()
    at.switch_page("pages/reconstructions.py").run()
    at.slider(key="page.rec.n").set_value(8).run()
    assert len(plots.grid_images(charts(at)[0])) == 16
    at.switch_page("pages/interpolation.py").run()
    assert not at.exception
    assert any(xtitle(c) == "z₁" for c in charts(at))  # a 2-D latent is its own map, no PCA
    at.switch_page("pages/reconstructions.py").run()
    assert at.slider(key="page.rec.n").value == 8
    for key, value in (("hp.latent_dim", 7), ("hp.hidden", "64,32"), ("hp.likelihood", "gaussian"),
                       ("hp.sigma_learned", True), ("run.active", "fashion-2d")):
        assert at.session_state[key] == value, key
    assert at.number_input(key="hp.latent_dim").value == 7
    assert "latent 2" in texts(at.sidebar.caption)


def test_a_bad_sidebar_value_gives_an_error_naming_the_field(lab):
    at = open_app()
    at.text_input(key="hp.hidden").set_value("0,abc").run()
    assert "hidden" in texts(at.sidebar.error) and "hidden" in texts(at.error)
    assert at.button(key="train.go").disabled
    at.text_input(key="hp.hidden").set_value("64").run()
    at.number_input(key="hp.kl_warmup_epochs").set_value(9).run()  # more than the 5 epochs
    assert "kl_warmup_epochs" in texts(at.sidebar.error)
    at.number_input(key="hp.kl_warmup_epochs").set_value(0).run()
    assert not at.sidebar.error and not at.button(key="train.go").disabled


# -- training --------------------------------------------------------------------------------------------------
def set_tiny(at, name):
    for key, value in TINY.items():
        widget = at.text_input(key="hp." + key) if key == "hidden" else at.number_input(key="hp." + key)
        widget.set_value(value)
    at.text_input(key="page.train.name").set_value(name)
    return at.run()


def test_training_saves_a_new_run_and_makes_it_active(lab):
    root, _ = lab
    at = set_tiny(open_app(), "tiny-test")
    assert not at.button(key="train.go").disabled
    at.button(key="train.go").click().run()
    finish_training(at)
    assert not at.exception, [e.message for e in at.exception]
    meta = json.loads((root / "tiny-test" / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["num_train"] == 4096
    assert json.loads((root / "tiny-test" / "config.json").read_text())["hidden"] == [32]
    assert at.selectbox(key="run.active").value == "tiny-test"
    assert "Trained **tiny-test**" in texts(at.success)
    assert at.text_input(key="page.train.name").value != "tiny-test"  # a fresh name for the next run
    assert "tiny-test" in list(at.dataframe[0].value["name"])
    # the same name again is refused, never overwritten
    at.text_input(key="page.train.name").set_value("tiny-test").run()
    assert "already exists" in texts(at.error) and at.button(key="train.go").disabled
    at.text_input(key="page.train.name").set_value("../escape").run()
    assert "not allowed" in texts(at.error)


def test_a_diverging_run_shows_the_library_message_and_saves_nothing(lab):
    root, _ = lab
    at = set_tiny(open_app(), "tiny-nan")  # Adam at lr 1 on a deep net with a narrow Gaussian: NaN within epoch 1
    for key, value in {"hp.likelihood": "gaussian", "hp.hidden": "128,128,128", "hp.learning_rate": 1.0,
                       "hp.sigma": 0.01}.items():
        (at.radio if key == "hp.likelihood" else at.text_input if key == "hp.hidden" else at.number_input)(
            key=key).set_value(value).run()
    at.button(key="train.go").click().run()
    finish_training(at)
    assert not at.exception
    assert "training diverged" in texts(at.error) and "smaller learning_rate" in texts(at.error)
    assert not (root / "tiny-nan").exists()  # the empty run directory is removed
    assert at.selectbox(key="run.active").value == "fashion-default"
    at.run()  # the next run does not mistake it for a stopped training
    assert at.selectbox(key="run.active").value == "fashion-default" and not at.info


def test_a_training_that_ends_while_the_sidebar_draws_is_reported_on_that_visit(lab, monkeypatch):
    """The race CI met once: the job ended after the script run's finalize() looked at it and before the sidebar
    drew its progress, and the page showed neither progress nor outcome until the next click."""
    from ui import cache, session, training
    from vae_tf.config import Config

    root, _ = lab
    at = open_app()
    job = training.TrainingJob("tiny-race", root / "tiny-race", Config())
    job.outcome, job.message = "failed", "the worker could not start"
    job.finished.set()
    cache.trainings().put(at.session_state[session.VISITOR], job)
    real, calls = training.finalize, []
    monkeypatch.setattr(training, "finalize", lambda: real() if calls else calls.append(1))  # the first: too early
    at.run()
    assert calls and "Cannot train: the worker could not start" in texts(at.error)
    assert cache.trainings().get(at.session_state[session.VISITOR]) is None  # reported once, then gone


def test_a_second_training_is_refused_while_one_runs(lab):
    from ui import cache

    root, _ = lab
    at = set_tiny(open_app(), "tiny-busy")
    slots = cache.training_slots()
    assert slots.try_acquire()  # another session's training
    try:
        at.button(key="train.go").click().run()
    finally:
        slots.release()
    assert "Another training is running" in texts(at.warning)
    assert not (root / "tiny-busy").exists()


def test_a_stopped_training_keeps_its_steps_and_becomes_active(lab, monkeypatch):
    """The sidebar's Stop asks the background training to stop after its current compiled call; the steps
    done are saved and the run becomes the active one."""
    from ui import training

    root, _ = lab
    monkeypatch.setattr(training.TrainingJob, "_should_stop", lambda job: len(job.steps) >= 2)
    at = set_tiny(open_app(), "tiny-stopped")
    at.number_input(key="hp.epochs").set_value(3).run()
    at.button(key="train.go").click().run()
    finish_training(at)
    meta = json.loads((root / "tiny-stopped" / "meta.json").read_text())
    assert meta["status"] == "stopped" and 0 < meta["steps_done"] < meta["steps_per_epoch"] * 3
    assert at.selectbox(key="run.active").value == "tiny-stopped"
    assert f"stopped after {meta['steps_done']} steps" in texts(at.info)


def test_a_training_goes_on_while_the_visitor_switches_pages(lab):
    """The training runs in a worker, not in the script run: page switches and widget changes do not stop it,
    and every page shows its progress in the sidebar with one Stop."""
    from ui import cache

    root, _ = lab
    at = set_tiny(open_app(), "tiny-bg")
    at.number_input(key="hp.epochs").set_value(2).run()
    at.button(key="train.go").click().run()
    at.switch_page("pages/reconstructions.py").run()
    at.number_input(key="hp.latent_dim").set_value(3).run()
    running = [j for j in cache.trainings().values() if j.name == "tiny-bg"]
    assert running
    if running[0].running:
        assert [b for b in at.sidebar.button if b.key == "train.stop"]
    at.switch_page("pages/train.py").run()
    finish_training(at)
    meta = json.loads((root / "tiny-bg" / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_done"] == 2
    assert at.selectbox(key="run.active").value == "tiny-bg"


def test_continue_training_adds_epochs_to_a_finished_run(lab):
    root, _ = lab
    at = set_tiny(open_app(), "tiny-more")
    at.button(key="train.go").click().run()
    finish_training(at)
    assert at.selectbox(key="run.active").value == "tiny-more"
    at.number_input(key="page.train.more").set_value(2).run()
    at.button(key="train.continue").click().run()
    finish_training(at)
    meta = json.loads((root / "tiny-more" / "meta.json").read_text())
    config = json.loads((root / "tiny-more" / "config.json").read_text())
    assert (meta["status"], meta["epochs_done"], config["epochs"]) == ("complete", 3, 3)
    history = json.loads((root / "tiny-more" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3]


def test_a_run_worse_than_ignoring_its_input_is_not_made_active(lab):
    at = set_tiny(open_app(), "tiny-worse")
    # learning rate 1 on 512 images: a test ELBO of about −477 against the pixel-independent model's −385
    at.number_input(key="hp.learning_rate").set_value(1.0)
    at.number_input(key="hp.max_train_images").set_value(512).run()
    at.button(key="train.go").click().run()
    finish_training(at)
    assert "did not learn" in texts(at.warning) and "ignores its input" in texts(at.warning)
    assert at.selectbox(key="run.active").value != "tiny-worse"


def test_a_visitors_runs_are_theirs(lab):
    """A run trained by one visitor is listed first for them, marked theirs, and deletable by them only; another
    visitor does not see it unless they ask, and cannot delete it; anyone may download it."""
    root, _ = lab
    a = set_tiny(open_app(), "tiny-mine")
    a.button(key="train.go").click().run()
    finish_training(a)
    picker = a.selectbox(key="run.active")
    assert picker.options[0] == "tiny-mine (yours)" and picker.value == "tiny-mine"
    b = open_app()  # another visitor
    assert "tiny-mine" not in b.selectbox(key="run.active").options
    b.toggle(key="runs.show_others").set_value(True).run()
    assert "tiny-mine" in b.selectbox(key="run.active").options
    b.selectbox(key="run.active").set_value("tiny-mine").run()
    assert b.checkbox(key="train.delete_sure").disabled  # not theirs
    from ui import catalog

    assert catalog.delete("tiny-mine", "someone-else") == "it is another visitor's"
    assert (root / "tiny-mine").is_dir()
    a.checkbox(key="train.delete_sure").check().run()
    a.button(key="train.delete").click().run()
    assert "Deleted tiny-mine" in texts(a.success) and not (root / "tiny-mine").exists()
    assert a.selectbox(key="run.active").value == "fashion-default"


def test_a_run_zip_round_trips_and_a_bad_one_changes_nothing(lab):
    from vae_tf import archive

    root, _ = lab
    data = archive.pack(root / "fashion-2d")
    at = open_app()
    at.file_uploader(key="page.train.run_upload").upload("my-2d.zip", data).run()
    assert "Run my-2d added" in texts(at.success)
    assert at.selectbox(key="run.active").value == "my-2d"
    assert (root / "my-2d" / "weights.npz").read_bytes() == (root / "fashion-2d" / "weights.npz").read_bytes()
    before = sorted(p.name for p in root.iterdir())
    at.file_uploader(key="page.train.run_upload").upload("evil.zip", _zip({"../../x/meta.json": b"{}"})).run()
    assert "Run not accepted: it holds more than one folder" in texts(at.error)
    at.file_uploader(key="page.train.run_upload").upload("evil2.zip", _zip({"run/evil.py": b"x"})).run()
    assert "'run/evil.py', which is not a file of a run" in texts(at.error)
    assert sorted(p.name for p in root.iterdir()) == before


def _zip(members: dict) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_true_posterior_on_a_20d_run_shows_the_shipped_2d_run_and_keeps_the_active_run(lab):
    at = open_app("pages/posterior.py")
    assert "fashion-2d" in texts(at.info) and at.get("plotly_chart")
    assert at.selectbox(key="run.active").value == "fashion-default"


def test_a_link_never_starts_a_large_estimate_without_a_click(lab, monkeypatch):
    from ui import cache

    at = shared_open_app(params={"page.logpx.n": "2000", "page.logpx.k": "5000"})
    before = len(cache.job_registry()._jobs)  # the server's own (its prewarm) started by now
    loaded, load = [], cache.run
    monkeypatch.setattr(cache, "run", lambda ref: loaded.append(ref.name) or load(ref))
    at.switch_page("pages/log-px.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "press **Estimate**" in texts(at.info)
    assert len(cache.job_registry()._jobs) == before
    # nor loads the run: on a fresh server such a link's first open imports no TensorFlow
    assert loaded == [], loaded
    at.number_input(key="page.logpx.n").set_value(20)
    at.get("form_submit_button")[0].click().run()  # the click loads it
    assert not at.exception, [e.message for e in at.exception]
    assert loaded and set(loaded) == {"fashion-default"}, loaded


def test_a_killed_training_keeps_its_last_epoch_marked_interrupted(lab):
    """SIGKILL of the training's process (as the kernel's OOM killer would): the last whole epoch is kept, marked
    interrupted, nothing half-written is left, and the run loads."""
    import os
    import signal
    import time

    from ui import cache
    from vae_tf import runs

    root, _ = lab
    at = set_tiny(open_app(), "tiny-killed")
    at.number_input(key="hp.epochs").set_value(50).run()
    at.button(key="train.go").click().run()
    job = [j for j in cache.trainings().values() if j.name == "tiny-killed"][0]
    deadline = time.monotonic() + 120
    while job.saved_epochs < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.saved_epochs >= 1 and job.pid
    os.kill(job.pid, signal.SIGKILL)
    finish_training(at)
    assert "was interrupted" in texts(at.error)
    meta = runs.read_meta(root / "tiny-killed")
    assert meta["status"] == "interrupted" and meta["epochs_done"] >= 1
    assert not list((root / "tiny-killed").glob(".*.tmp"))
    assert runs.load_run(root / "tiny-killed").meta["steps_done"] == meta["steps_done"]


# -- uploads ---------------------------------------------------------------------------------------------------
def test_an_invalid_upload_gives_an_error_and_a_valid_one_becomes_the_next_data_set(lab):
    _, uploads = lab
    at = open_app()
    at.file_uploader(key="page.train.upload").upload("bad.npz", b"this is not a zip file").run()
    assert not at.exception
    assert "Upload not accepted: bad.npz is not" in texts(at.error)
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x_train=rng.integers(0, 256, (64, 8, 8), dtype=np.uint8),
             x_test=rng.integers(0, 256, (16, 8, 8), dtype=np.uint8))
    at.file_uploader(key="page.train.upload").set_value(("mine.npz", buf.getvalue(), "application/octet-stream"))
    at.run()
    assert "64 training and 16 test images of 8×8" in texts(at.success)
    saved = at.selectbox(key="hp.dataset").value  # by its name in the uploads folder, never a server path
    assert saved.startswith("uploads/") and (uploads / saved.removeprefix("uploads/")).is_file()
    assert str(uploads) not in saved and "upload: mine.npz" in at.selectbox(key="hp.dataset").options


def test_a_run_trained_on_an_upload_names_it_inside_the_repo_and_loads(lab):
    """config.json holds "uploads/<hash>.npz" (the worker is handed the file); the run loads with its images."""
    root, uploads = lab
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    np.savez(buf, x_train=rng.integers(0, 256, (256, 8, 8), dtype=np.uint8),
             x_test=rng.integers(0, 256, (32, 8, 8), dtype=np.uint8))
    at = open_app()
    at.file_uploader(key="page.train.upload").set_value(("eights.npz", buf.getvalue(), "application/octet-stream"))
    at = set_tiny(at.run(), "tiny-upload")
    at.button(key="train.go").click().run()
    finish_training(at)
    assert not at.exception, [e.message for e in at.exception]
    dataset = json.loads((root / "tiny-upload" / "config.json").read_text())["dataset"]
    assert dataset.startswith("uploads/") and (uploads / dataset.removeprefix("uploads/")).is_file()
    at.selectbox(key="run.active").set_value("tiny-upload").run()  # 4 steps may not beat the baseline: chosen
    at.switch_page("pages/reconstructions.py").run()
    assert not at.exception and not at.error, texts(at.error)


# -- background jobs (ui.jobs: plain threads, no Streamlit) ------------------------------------------------
def test_jobs_share_results_stop_on_request_and_refuse_work_after_shutdown():
    from ui.jobs import Jobs

    jobs = Jobs()
    gate = threading.Event()

    def count(job):
        for i in range(100):
            if job.stop.is_set():
                return ("stopped", i)
            job.report(i + 1, 100)
            gate.wait(0.01)
        return ("done", 100)

    a = jobs.start("a", count)
    assert jobs.start("a", count) is a  # the same question gets the same job
    assert a.finished.wait(10) and a.result == ("done", 100) and a.fraction == 1.0
    b = jobs.start("b", count)
    b.cancel()
    assert b.finished.wait(10) and b.result[0] == "stopped"
    jobs.discard("b")
    assert jobs.get("b") is None
    boom = jobs.start("boom", lambda job: 1 / 0)
    assert boom.finished.wait(10) and "ZeroDivisionError" in boom.error_text
    c = jobs.start("c", count)
    jobs.shutdown()
    assert not c.running and c.result[0] == "stopped"
    late = jobs.start("late", count)
    assert not late.running and "shutting down" in late.error_text
