"""Bad input, through the library and through the app (AppTest): every case gets a clear message, and
nothing saved is lost. What the library's own suites already cover (config ranges, damaged run files,
run names, most refused .npz files, K beyond MAX_K) is not repeated here; this file adds what the app
does with them, and the cases those suites miss.

Runs live in a temporary checkpoints root (VAE_LAB_CHECKPOINTS) holding copies of two shipped runs, a
tiny 1-D run, and a row of broken ones; the repository's checkpoints/ is never written."""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from ui.escape import md
from conftest import APP, finish_training, make_lab, open_app, texts
from streamlit.testing.v1 import AppTest

from vae_tf import runs
from vae_tf.config import FIELDS, Config
from vae_tf.data import MAX_NPZ_BYTES, DataError, load_npz

SHIPPED = ("fashion-default", "fashion-2d")
PAGES = ("pages/train.py", "pages/reconstructions.py", "pages/interpolation.py", "pages/log-px.py",
         "pages/posterior.py", "pages/theory.py", "pages/prior-sampling.py", "pages/latent-map.py",
         "pages/compare.py")
NUMERIC = [name for name, spec in FIELDS.items() if spec.kind in ("int", "float", "optional_int", "sigma")]


# -- broken runs on disk -----------------------------------------------------------------------------------
def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _foreign(path: Path):
    np.savez(path, some_other_model=np.zeros(3))


def _old_version(path: Path):
    d = json.loads(path.read_text())
    d["config_version"] = 99
    path.write_text(json.dumps(d))


def _wrong_shape(path: Path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["encoder/enc_0/kernel"] = np.zeros((784, 17), np.float32)
    np.savez(path, **arrays)


# Runs the sidebar leaves out of its picker, with the reason its notice gives: name → (file, damage, reason)
BROKEN = {
    "missing-weights": ("weights.npz", Path.unlink, "weights.npz is missing"),
    "truncated-weights": ("weights.npz", _truncate, "weights.npz is not a readable weights file"),
    "foreign-weights": ("weights.npz", _foreign, "weights.npz is not a VAE Lab weights file"),
    "old-version": ("config.json", _old_version, "config.json: config_version 99 is not supported"),
}
# A run whose files all read but whose weights do not fit its config: found when a page loads it.
MISFIT = "wrong-shape"
BAD_DIR_NAMES = ("bad name", "bell\x07run", "new\nline", "-dash")


@pytest.fixture(scope="module")
def lab(tmp_path_factory, fashion):
    from vae_tf.train import train

    root = make_lab(tmp_path_factory, SHIPPED)
    train(Config(latent_dim=1, hidden=(32,), epochs=1, max_train_images=512, seed=1), fashion, root / "tiny-1d")
    for name, (file, damage, _) in BROKEN.items():
        shutil.copytree(root / "tiny-1d", root / name)
        damage(root / name / file)
    shutil.copytree(root / "tiny-1d", root / MISFIT)
    _wrong_shape(root / MISFIT / "weights.npz")
    for name in BAD_DIR_NAMES:  # whole runs whose folder names are no run names
        shutil.copytree(root / "tiny-1d", root / name)
    (root / "half-written").mkdir()  # a folder with no meta.json is no run (meta.json is written last)
    shutil.copy(root / "tiny-1d" / "config.json", root / "half-written")
    uploads = tmp_path_factory.mktemp("uploads")
    mp = pytest.MonkeyPatch()
    mp.setenv("VAE_LAB_CHECKPOINTS", str(root))
    mp.setenv("VAE_LAB_UPLOADS", str(uploads))
    yield root, uploads
    mp.undo()


def snapshot(root: Path) -> dict:
    """Every file under root, by path, with its bytes: what 'nothing saved is lost' compares."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def no_exception(at):
    assert not at.exception, [e.message for e in at.exception]




def settings(at):
    return at.session_state["settings"]


# -- the sidebar's numbers: at, just past and far past their bounds ------------------------------------
def _bound(spec, side: str):
    value = getattr(spec, side)
    return float(value) if spec.kind in ("float", "sigma") else int(value)


@pytest.mark.parametrize("side", ["lo", "hi"])
def test_every_sidebar_number_at_its_bound_is_used(lab, side):
    """All of them at once: the lows together, then the highs together, are one valid config."""
    values = {name: _bound(FIELDS[name], side) for name in NUMERIC}
    at = open_app(session={f"hp.{name}": v for name, v in values.items()})
    no_exception(at)
    s = settings(at)
    assert s.config_error is None, s.config_error
    for name, value in values.items():
        assert at.number_input(key=f"hp.{name}").value == value, name
        assert getattr(s.config, name) == value, name
    if side == "lo":
        assert not at.button(key="train.go").disabled
    else:  # every maximum at once is a valid config, but more than the server allows: refused up front, estimated
        assert at.button(key="train.go").disabled
        assert "Cannot train: this run would need about" in texts(at.error) and "GB of memory" in texts(at.error)


def _past(spec, side: str, far: bool):
    lo, hi = spec.lo, spec.hi
    if far:
        value = -1e12 if side == "lo" else 1e12
    elif spec.kind in ("float", "sigma"):
        value = lo / 2 if side == "lo" and lo > 0 else (lo - 0.01 if side == "lo" else hi * 1.01)
    else:
        value = int(lo) - 1 if side == "lo" else int(hi) + 1
    return float(value) if spec.kind in ("float", "sigma") else int(value)


@pytest.mark.parametrize("side, far", [("lo", False), ("hi", False), ("lo", True), ("hi", True)],
                         ids=["just-below", "just-above", "far-below", "far-above"])
def test_every_sidebar_number_past_its_bound_is_named_and_blocks_training(lab, side, far):
    """A value outside its range, however it arrives (here: session state, as typing or a callback would set it;
    the URL is tested below and typing in the browser), is shown as given, named with its range, and Train
    stays disabled: nothing is clamped to a bound or replaced by a default behind the visitor's back."""
    at = open_app(session={"hp.likelihood": "gaussian"})  # σ's widget is enabled only for a Gaussian likelihood
    for name in NUMERIC:
        value = _past(FIELDS[name], side, far)
        default = at.number_input(key=f"hp.{name}").value
        at.number_input(key=f"hp.{name}").set_value(value).run()
        no_exception(at)
        s = settings(at)
        assert s.config is None and name in s.config_error, (name, s.config_error)
        assert at.number_input(key=f"hp.{name}").value == value, name  # shown as given
        assert at.button(key="train.go").disabled, name
        assert name in texts(at.sidebar.error)
        at.number_input(key=f"hp.{name}").set_value(default).run()


def test_a_run_over_the_visitors_disk_budget_is_refused_before_it_starts(lab, monkeypatch):
    monkeypatch.setenv("VAE_LAB_VISITOR_DISK_MB", "1")
    at = open_app()
    assert at.button(key="train.go").disabled
    assert "a visitor may keep 1 MB" in texts(at.error) and "would add about" in texts(at.error)


def test_an_upload_over_the_visitors_disk_budget_is_refused_and_nothing_is_kept(lab, monkeypatch):
    _, uploads = lab
    monkeypatch.setenv("VAE_LAB_VISITOR_DISK_MB", "0.001")
    before = sorted(p.name for p in uploads.iterdir())
    buf = io.BytesIO()
    np.savez(buf, x_train=np.zeros((64, 8, 8), np.uint8) + 7, x_test=np.zeros((16, 8, 8), np.uint8))
    at = open_app()
    at.file_uploader(key="page.train.upload").set_value(("mine.npz", buf.getvalue(), "application/octet-stream")).run()
    no_exception(at)
    assert "Upload not accepted: your runs and uploads take 0 MB" in texts(at.error)
    assert "a visitor may keep 0 MB" in texts(at.error) and at.selectbox(key="hp.dataset").value == "fashion_mnist"
    assert sorted(p.name for p in uploads.iterdir()) == before


def test_a_run_zip_over_the_visitors_disk_budget_is_refused_and_nothing_is_kept(lab, monkeypatch):
    from vae_tf import archive

    root, _ = lab
    data = archive.pack(root / "fashion-2d")
    assert archive.unpacked_bytes(data) == sum((root / "fashion-2d" / f).stat().st_size
                                               for f in ("config.json", "meta.json", "history.json", "weights.npz"))
    monkeypatch.setenv("VAE_LAB_VISITOR_DISK_MB", "0.05")
    before = sorted(p.name for p in root.iterdir())
    at = open_app()
    at.file_uploader(key="page.train.run_upload").upload("big-2d.zip", data).run()
    no_exception(at)
    assert "Run not accepted: your runs and uploads take 0 MB on this server and this run would add" in texts(at.error)
    assert sorted(p.name for p in root.iterdir()) == before and at.selectbox(key="run.active").value != "big-2d"


def test_a_decimal_in_a_whole_number_field_is_named_not_rounded(lab):
    at = open_app(session={"hp.latent_dim": 2.5})
    assert "latent_dim must be a whole number; got 2.5" in texts(at.sidebar.error)
    assert at.button(key="train.go").disabled


@pytest.mark.parametrize("key, value, message", [
    ("hp.hidden", "0,abc", "hidden must be comma-separated whole numbers"),
    ("hp.hidden", "64,5000", "each hidden width must be between 1 and 4096; got 5000"),
    ("hp.hidden", "8,8,8,8,8", "hidden must list 1 to 4 layer widths; got 5"),
    ("hp.hidden", "", "hidden must list 1 to 4 layer widths; got 0"),
    ("hp.learning_rate", float("nan"), "learning_rate must be a finite number"),
])
def test_a_bad_text_or_non_finite_value_is_named_and_blocks_training(lab, key, value, message):
    at = open_app(session={key: value})
    no_exception(at)
    assert message in texts(at.sidebar.error) and message in texts(at.error)
    assert at.button(key="train.go").disabled


def test_inconsistent_settings_are_named_and_block_training(lab):
    at = open_app(session={"hp.objective": "iwae", "hp.beta": 2.0})
    assert "beta must be 1 with the iwae objective" in texts(at.sidebar.error)
    assert at.button(key="train.go").disabled
    at = open_app(session={"hp.epochs": 2, "hp.kl_warmup_epochs": 3})
    assert "kl_warmup_epochs must be between 0 and epochs (2); got 3" in texts(at.sidebar.error)
    assert at.button(key="train.go").disabled


def test_a_batch_larger_than_the_training_set_is_refused_and_leaves_no_folder(lab):
    root, _ = lab
    before = snapshot(root)
    at = open_app(session={"hp.batch_size": 256, "hp.max_train_images": 100, "page.train.name": "too-small"})
    at.button(key="train.go").click().run()
    said = texts(at.error)  # the worker may fail before this run ends, which then reports it
    finish_training(at)
    no_exception(at)
    assert "Cannot train: batch_size (256) is larger than the number of training images (100)" in said + texts(at.error)
    assert not (root / "too-small").exists() and snapshot(root) == before
    # the sidebar and Train are usable again at once, to fix the setting (they were drawn disabled for the run)
    assert not at.number_input(key="hp.batch_size").disabled and not at.button(key="train.go").disabled


# -- a 1-D latent, and K past its limit --------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES[1:])
def test_every_page_copes_with_a_1d_latent(lab, page):
    """Pages that need two dimensions say so (and offer the 2-D run); none raises."""
    at = open_app(run="tiny-1d", page=page)
    no_exception(at)
    assert not at.error, texts(at.error)
    assert at.get("plotly_chart") or at.latex or at.info, f"{page} shows neither results nor a reason"


def test_the_latent_map_and_posterior_say_why_a_1d_latent_has_no_map(lab):
    at = open_app(run="tiny-1d", page="pages/latent-map.py")
    assert "1-D latent" in texts(at.info) and "two dimensions" in texts(at.info)
    at = open_app(run="tiny-1d", page="pages/posterior.py")
    assert "1-D latent" in texts(at.info)
    assert any(b.label == "Use fashion-2d" for b in at.button)


def test_the_grid_needs_a_2d_latent_in_the_library_too(lab):
    from vae_tf import exact

    run = runs.load_run(lab[0] / "tiny-1d")
    with pytest.raises(ValueError, match="the grid integral needs a 2-D latent; this model's latent has 1"):
        exact.grid_posterior(run.model, np.zeros(run.model.num_pixels, np.float32))


@pytest.mark.parametrize("k, n", [(10**6, 200), (0, 200), (1000, 10**9), (1000, -5)])
def test_log_px_settings_past_their_limits_fall_back(lab, k, n):
    """K past its largest choice (or below its smallest), or more images than the test set: the page
    computes with valid settings instead of failing (or of running for hours)."""
    from ui import estimates

    at = open_app(page="pages/log-px.py", session={"page.logpx.k": k, "page.logpx.n": n})
    no_exception(at)
    assert at.select_slider(key="page.logpx.k").value in estimates.K_CHOICES
    assert 10 <= at.number_input(key="page.logpx.n").value <= estimates.MAX_IMAGES
    assert not at.error and at.get("plotly_chart")


# -- links: values typed in the URL ------------------------------------------------------------------------
# (A page's own widgets with an infinite number in the URL are opened in the real browser, tests/test_browser.py:
# AppTest opens a page other than the default one without app.py, which is where such values are dropped.)
@pytest.mark.parametrize("page, params", [
    ("pages/posterior.py", {"page.posterior.image": "99999", "page.posterior.samples": "1000"}),
    ("pages/posterior.py", {"page.posterior.image": "-3", "page.posterior.view": "<script>"}),
    ("pages/posterior.py", {"page.posterior.image": "abc"}),
    ("pages/theory.py", {"page.theory.image": "nan"}),
    ("pages/prior-sampling.py", {"page.prior.repeats": "1000", "page.prior.k": "7"}),
    ("pages/latent-map.py", {"page.latent.n": "123", "page.latent.side": "1e9"}),
    ("pages/compare.py", {"page.compare.runs": ["../etc", "fashion-2d", "nope"]}),
], ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={v[k]}" for k in v))
def test_a_url_value_a_page_widget_cannot_take_falls_back_without_an_error(lab, page, params):
    """A shared link opens its page in the session's first run, so that is how these are opened."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["run.active"] = "fashion-2d"
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(page).run()
    no_exception(at)
    assert not at.error, texts(at.error)
    for key in params:
        value = at.session_state[key] if key in at.session_state else None  # noqa: SIM401 (AppTest state has no .get)
        assert str(value) not in params[key], (key, value)


@pytest.mark.parametrize("params, now", [
    ({"hp.latent_dim": "inf"}, "hp.latent_dim=inf is not valid here (now 20)"),
    ({"hp.epochs": "1e999", "hp.batch_size": "-inf"}, "hp.epochs=1e999 is not valid here (now 5)"),
    ({"hp.learning_rate": "inf"}, "hp.learning_rate=inf is not valid here"),
    # a number out of range reaches its widget as given, and is named there (Train stays disabled)
    ({"hp.latent_dim": "257"}, "latent_dim must be between 1 and 256; got 257"),
    ({"hp.latent_dim": "0"}, "latent_dim must be between 1 and 256; got 0"),
    ({"hp.max_train_images": "99999999999"}, "max_train_images must be between"),
    ({"hp.hidden": "1,2,3,4,5"}, "hidden must list 1 to 4 layer widths; got 5"),
    ({"hp.objective": "magic"}, "hp.objective=magic is not valid here"),
    ({"hp.dataset": "/etc/passwd.npz"}, "hp.dataset=/etc/passwd.npz is not valid here (now fashion_mnist)"),
    ({"hp.dataset": "../../secret.npz"}, "hp.dataset=../../secret.npz is not valid here"),
    ({"run.active": "../fashion-default"}, "run.active=../fashion-default is not valid here"),
    ({"run.active": "bad name"}, "run.active=bad name is not valid here"),
    ({"run.active": "missing-weights"}, "run.active=missing-weights is not valid here"),
], ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={v[k]}" for k in v))
def test_a_sidebar_value_in_the_url_past_its_bounds_is_named_and_not_used(lab, params, now):
    at = open_app(params=params)
    no_exception(at)
    shown = (texts(at.warning) + texts(at.error)).replace("`", "")
    assert now in shown, shown
    s = settings(at)
    assert s.run_name == "fashion-default"
    if s.config is not None:  # what the next run would train: never a value from outside the ranges
        for name in FIELDS:
            assert getattr(s.config, name) == getattr(Config(), name), name
    else:
        assert at.button(key="train.go").disabled


# -- a learning rate that makes training diverge -----------------------------------------------------------
# Adam at lr 1 on a deep net with a narrow Gaussian: finite through epoch 1, NaN in epoch 2 (seeded).
DIVERGES = {"hp.learning_rate": 1.0, "hp.hidden": "128,128,128", "hp.max_train_images": 128, "hp.batch_size": 64,
            "hp.likelihood": "gaussian", "hp.sigma": 0.01, "hp.latent_dim": 2, "hp.epochs": 20}


def test_a_diverging_learning_rate_stops_with_a_message_and_keeps_the_last_good_epoch(lab):
    root, _ = lab
    at = open_app(session={**DIVERGES, "page.train.name": "diverges"})
    at.button(key="train.go").click().run()
    finish_training(at)
    no_exception(at)
    message = texts(at.error)
    assert "training diverged" in message and "smaller learning_rate than 1" in message
    assert "Run **diverges** keeps its last good epoch (1 of 20)" in message
    run = runs.load_run(root / "diverges")  # the last good epoch loads
    assert run.meta["status"] == "diverged" and run.meta["epochs_done"] == 1 and len(run.history["epochs"]) == 1
    assert all(np.all(np.isfinite(w)) for w in run.model.named_weights().values())
    assert at.selectbox(key="run.active").value == "fashion-default"  # not switched to a diverged run
    assert "already exists" not in texts(at.error)  # the name field offers a fresh name
    assert at.text_input(key="page.train.name").value != "diverges"
    at.run()
    no_exception(at)
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["diverges", "status"] == "diverged"
    at.selectbox(key="run.active").set_value("diverges").run()
    at.switch_page("pages/reconstructions.py").run()
    no_exception(at)
    assert not at.error and at.get("plotly_chart")


# -- broken runs on disk ----------------------------------------------------------------------------------
def test_the_run_picker_leaves_out_what_cannot_load_and_says_why(lab):
    at = open_app()
    no_exception(at)
    options = at.selectbox(key="run.active").options
    assert {"fashion-default", "fashion-2d", "tiny-1d", MISFIT} <= set(options)
    assert not (set(BAD_DIR_NAMES) | set(BROKEN) | {"half-written"}) & set(options)
    notice = texts(at.sidebar.caption)
    for name, (_, _, why) in BROKEN.items():
        assert f"{name} ({why}" in notice, (name, notice)
    for name in BAD_DIR_NAMES:
        assert f"{md(repr(name))} (not a run name" in notice, (name, notice)  # shown literally, never as markdown


@pytest.mark.parametrize("name", [*BROKEN, *BAD_DIR_NAMES, "half-written", "../fashion-2d", "absent"])
def test_a_broken_or_unknown_active_run_falls_back_to_the_default(lab, name):
    """A run that broke while it was active (or a link naming one) is not kept: the default run shows."""
    root, _ = lab
    before = snapshot(root)
    for source in ({"session": {"run.active": name}}, {"params": {"run.active": name}}):
        at = open_app(**source)
        no_exception(at)
        assert at.selectbox(key="run.active").value == "fashion-default"
        assert not at.error, texts(at.error)
    at.switch_page("pages/reconstructions.py").run()
    no_exception(at)
    assert at.get("plotly_chart") and not at.error
    assert snapshot(root) == before  # looking never writes


def test_a_run_whose_weights_do_not_fit_says_so_on_every_page(lab):
    root, _ = lab
    before = snapshot(root / MISFIT)
    at = open_app(run=MISFIT)
    no_exception(at)
    for page in PAGES[1:-1]:  # all but Compare runs, which shows the runs the user picks there
        at.switch_page(page).run()
        no_exception(at)
        shown = texts(at.error)
        assert f"The run **{MISFIT}** cannot be loaded" in shown, (page, shown)
        assert "encoder/enc_0/kernel has shape (784, 17), the model needs (784, 32)" in shown, (page, shown)
    at.button(key="hp.copy").click().run()  # copying its settings is fine: its config is valid
    no_exception(at)
    assert at.number_input(key="hp.latent_dim").value == 1
    assert snapshot(root / MISFIT) == before


def test_the_runs_table_gives_each_broken_folder_its_reason(lab):
    at = open_app()
    table = at.dataframe[0].value.set_index("name")
    for name, (_, _, why) in BROKEN.items():
        assert why in table.loc[name, "error"], (name, table.loc[name, "error"])
    for name in BAD_DIR_NAMES:
        assert "not a run name" in table.loc[name, "error"]
    assert "meta.json is missing" in table.loc["half-written", "error"]
    assert table.loc["fashion-default", "error"] == ""


@pytest.mark.parametrize("name", ["../evil", "a/b", "/etc", "tab\there", "bell\x07", "dot..dot", "x" * 65, " "])
def test_a_run_name_that_could_leave_the_checkpoints_folder_is_refused(lab, name):
    root, _ = lab
    at = open_app(session={"page.train.name": name})
    no_exception(at)
    assert "is not allowed" in texts(at.error) and at.button(key="train.go").disabled


def test_a_run_name_taken_by_a_broken_folder_is_refused_and_the_folder_kept(lab):
    root, _ = lab
    before = snapshot(root / "truncated-weights")
    at = open_app(session={"page.train.name": "truncated-weights"})
    assert "already exists" in texts(at.error) and at.button(key="train.go").disabled
    assert snapshot(root / "truncated-weights") == before


# -- a read-only checkpoints folder ------------------------------------------------------------------------
def _refuse_writes_under(root: Path, monkeypatch):
    """What the kernel does to a user who is not root in a folder without write permission: creating,
    opening for writing or renaming anything under root fails with PermissionError. The test runs as root
    here (root writes through any permission), so it refuses those calls itself; as another user the
    chmod alone does it."""
    import builtins
    import errno

    def guard(path):
        if Path(os.path.abspath(path)).is_relative_to(root):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    real = {name: getattr(os, name) for name in ("mkdir", "open", "replace", "rename")}
    real_open = builtins.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT
    monkeypatch.setattr(os, "mkdir", lambda p, *a, **k: (guard(p), real["mkdir"](p, *a, **k))[1])
    monkeypatch.setattr(os, "open", lambda p, flags, *a, **k: (guard(p) if flags & writing else None,
                                                               real["open"](p, flags, *a, **k))[1])
    monkeypatch.setattr(os, "replace", lambda a, b, **k: (guard(b), real["replace"](a, b, **k))[1])
    monkeypatch.setattr(os, "rename", lambda a, b, **k: (guard(b), real["rename"](a, b, **k))[1])

    def open_(file, mode="r", *a, **k):
        if isinstance(file, (str, Path)) and any(c in mode for c in "wax+"):
            guard(file)
        return real_open(file, mode, *a, **k)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)


def test_a_read_only_checkpoints_folder_is_said_at_train_and_every_page_still_works(tmp_path_factory, monkeypatch):
    """Train says the folder is not writable (no traceback, no server path); the sidebar and Train stay usable,
    the shipped runs still open on every page, and nothing is written."""
    root = make_lab(tmp_path_factory, SHIPPED)
    monkeypatch.setenv("VAE_LAB_CHECKPOINTS", str(root))
    before = snapshot(root)
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")]}
    for p in [root, *root.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        if os.geteuid() == 0:
            _refuse_writes_under(root, monkeypatch)
        at = open_app(session={"hp.max_train_images": 512, "hp.hidden": "32", "hp.epochs": 1,
                               "page.train.name": "cannot-write"}, check=True)
        at.button(key="train.go").click().run()
        no_exception(at)
        said = texts(at.error)
        assert "Cannot write the run: the checkpoints folder is not writable (Permission denied)" in said, said
        assert str(root) not in said and "Traceback" not in said
        assert not at.button(key="train.go").disabled and not at.number_input(key="hp.epochs").disabled
        assert at.selectbox(key="run.active").options[:1] and not at.sidebar.error
        for page in PAGES[1:]:
            at.switch_page(page).run()
            no_exception(at)
        assert not (root / "cannot-write").exists()
    finally:
        monkeypatch.undo()
        for p, mode in modes.items():
            p.chmod(mode)
    assert snapshot(root) == before


# -- a closed tab, two sessions ----------------------------------------------------------------------------
def test_a_tab_closed_before_the_first_step_leaves_no_folder_and_frees_the_slot(lab, monkeypatch):
    """A training whose visitor has gone (no page polled it for ABANDON_SECONDS) stops; with no step done it
    leaves no run folder claiming the name, and frees the training slot."""
    from ui import cache, training

    root, _ = lab
    monkeypatch.setattr(training, "ABANDON_SECONDS", -1.0)  # gone at once
    at = open_app(session={"hp.max_train_images": 512, "hp.hidden": "32", "hp.epochs": 1,
                           "page.train.name": "closed-early"})
    at.button(key="train.go").click().run()
    finish_training(at)
    assert not (root / "closed-early").exists()
    assert not cache.training_slots().busy


def test_a_second_session_is_told_to_wait_and_the_first_one_finishes(lab):
    """Session A holds the only training slot (as while it trains); session B's Train gives the message
    and writes nothing; when A's slot is free, B trains."""
    from ui import cache

    root, _ = lab
    tiny = {"hp.max_train_images": 512, "hp.hidden": "32", "hp.epochs": 1, "hp.latent_dim": 2,
            "page.train.name": "second-session"}
    b = open_app(session=tiny)
    slots = cache.training_slots()
    assert slots.try_acquire()  # session A's training
    try:
        b.button(key="train.go").click().run()
    finally:
        slots.release()
    assert texts(b.warning) == "Another training is running, wait or try a smaller run."
    assert not (root / "second-session").exists()
    assert not b.button(key="train.go").disabled  # try again later: the button works
    b.button(key="train.go").click().run()
    finish_training(b)
    no_exception(b)
    assert runs.read_meta(root / "second-session")["status"] == "complete"


# -- uploads ----------------------------------------------------------------------------------------------
def npz_bytes(compressed: bool = False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


GOOD = np.random.default_rng(0).integers(0, 256, (16, 8, 8), dtype=np.uint8)
_OBJ = np.empty(2, dtype=object)
_OBJ[:] = [GOOD[0], GOOD[1]]

UPLOADS = {
    "pickled": (npz_bytes(x_train=_OBJ, x_test=GOOD), "holds pickled Python objects, which are refused"),
    "wrong-shape": (npz_bytes(x_train=GOOD.reshape(16, 64), x_test=GOOD), "x_train has shape (16, 64)"),
    "rgb": (npz_bytes(x_train=np.stack([GOOD] * 3, -1), x_test=GOOD), "x_train has shape (16, 8, 8, 3)"),
    "wrong-dtype": (npz_bytes(x_train=GOOD.astype(np.int64), x_test=GOOD), "x_train has dtype int64"),
    "complex": (npz_bytes(x_train=GOOD.astype(np.complex64), x_test=GOOD), "x_train has dtype complex64"),
    "nan-pixels": (npz_bytes(x_train=np.full((4, 8, 8), np.nan, np.float32), x_test=GOOD),
                   "x_train contains NaN or infinite pixels"),
    "zero-train": (npz_bytes(x_train=GOOD[:0], x_test=GOOD), "x_train holds zero images"),
    "zero-test": (npz_bytes(x_train=GOOD, x_test=GOOD[:0]), "x_test holds zero images"),
    "no-x-test": (npz_bytes(x_train=GOOD), "has no x_test"),
    "over-size": (b"PK" + bytes(MAX_NPZ_BYTES + 2**20), "is 201 MB; the limit is 200 MB"),
    "zip-bomb": (npz_bytes(compressed=True, x_train=np.zeros((70_000, 64, 64), np.uint8), x_test=GOOD),
                 "holds 273 MB of arrays once decompressed; the limit is 128 MB"),
    "not-a-zip": (b"\x93NUMPY fake", "is not a .npz (zip) file"),
}


def test_a_zip_bomb_is_refused_before_it_is_decompressed():
    """2 MB on the wire, 273 MB in memory: refused from the zip's directory, without decompressing."""
    import tracemalloc

    raw = UPLOADS["zip-bomb"][0]
    assert len(raw) < 2 * 2**20
    tracemalloc.start()
    with pytest.raises(DataError, match="once decompressed; the limit is 128 MB"):
        load_npz(raw, name="bomb.npz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20


def test_the_unpacked_limit_is_a_parameter_and_a_fitting_file_loads():
    raw = npz_bytes(x_train=GOOD, x_test=GOOD)
    assert load_npz(raw, max_unpacked_bytes=2 * GOOD.nbytes + 1000).x_train.shape == (16, 8, 8)
    with pytest.raises(DataError, match="once decompressed"):
        load_npz(raw, max_unpacked_bytes=GOOD.nbytes)


@pytest.mark.parametrize("case", UPLOADS)
def test_a_bad_upload_is_refused_with_its_reason_and_changes_nothing(lab, case):
    root, uploads = lab
    raw, message = UPLOADS[case]
    before = snapshot(root)
    at = open_app()
    at.file_uploader(key="page.train.upload").upload(f"{case}.npz", raw).run()
    no_exception(at)
    shown = texts(at.error)
    assert f"{case}.npz" in shown and message in shown, shown
    assert at.selectbox(key="hp.dataset").value == "fashion_mnist"  # the next run's data set is unchanged
    assert not any(uploads.iterdir()) and snapshot(root) == before


# -- text from visitors and links is shown as text ------------------------------------------------------------
PAYLOAD = "**bold** [Log in](http://evil.example) ![t](http://evil.example/i.png) `x` $y$ :red[z]"


def assert_literal(markdown: str):
    """No markdown construct of the payload survives: its openers are escaped, its URL cannot autolink."""
    import re

    assert not re.search(r"(?<!\\)\*\*|(?<!\\)\[|(?<!\\)`|(?<!\\)\$|://", markdown), markdown


def test_a_link_value_with_markdown_is_quoted_back_as_text(lab):
    at = open_app(params={"hp.hidden": PAYLOAD, "hp.objective": PAYLOAD, PAYLOAD: "1"})
    no_exception(at)
    messages = [e.value for e in (*at.sidebar.error, *at.error, *at.warning)]
    assert any("hidden" in m for m in messages) and any("objective" in m for m in messages), messages
    for m in messages:
        assert_literal(m)


def test_an_upload_named_with_markdown_is_named_as_text(lab):
    name = "<img src=x onerror=alert(1)>**bold** [a](http://x.example).npz"
    at = open_app()
    at.file_uploader(key="page.train.upload").upload(name.replace(".npz", "-bad.npz"), b"not a zip").run()
    assert "Upload not accepted" in texts(at.error)
    assert_literal(texts(at.error))
    at = open_app()
    at.file_uploader(key="page.train.upload").upload(name, npz_bytes(x_train=GOOD, x_test=GOOD[:8])).run()
    said = texts(at.success)
    assert "16 training and 8 test images" in said
    assert_literal(said)


@pytest.mark.parametrize("named", ["absolute", "uploads/../"])
def test_a_run_whose_config_names_a_file_outside_the_uploads_is_not_loaded(lab, tmp_path, named):
    """config.json may be edited by hand: the server still reads no .npz but its own uploads, whether it is named
    by a path or by a name that climbs out of the uploads folder."""
    root, uploads = lab
    outside = tmp_path / "secret.npz"
    outside.write_bytes(npz_bytes(x_train=GOOD, x_test=GOOD))
    shutil.rmtree(root / "points-outside", ignore_errors=True)
    shutil.copytree(root / "tiny-1d", root / "points-outside")
    config = json.loads((root / "points-outside" / "config.json").read_text())
    config["dataset"] = (str(outside) if named == "absolute"
                         else "uploads/" + os.path.relpath(outside, uploads))
    (root / "points-outside" / "config.json").write_text(json.dumps(config))
    at = open_app(run="points-outside", page="pages/reconstructions.py")
    no_exception(at)
    assert "is not among this server's uploads" in texts(at.error)
    assert str(tmp_path) not in texts(at.error)
    assert not at.get("plotly_chart")


def test_an_upload_is_found_by_its_name_or_by_a_run_from_befores_absolute_path(tmp_path, monkeypatch):
    from ui import server

    monkeypatch.setenv("VAE_LAB_UPLOADS", str(tmp_path))
    kept = (tmp_path / "0123456789abcdef.npz").resolve()
    assert server.upload_path(server.upload_name(kept)) == kept == server.upload_path(str(kept))
    for bad in ("uploads/../x.npz", "/etc/x.npz", "uploads/sub/x.npz", "uploads/x.txt", str(tmp_path / "x.txt")):
        with pytest.raises(ValueError, match="not among this server's uploads"):
            server.upload_path(bad)
