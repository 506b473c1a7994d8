"""Runs on disk: round trips, damaged files, run names, listing, atomic writes."""
import json
import os
import shutil

import keras
import numpy as np
import pandas as pd
import pytest

from vae_tf import checkpoints
from vae_tf.checkpoints import CheckpointError, check_run_name, list_runs, load_run, run_dir, save_run
from vae_tf.config import Config
from vae_tf.model import VAE

D = 64
X = np.random.default_rng(0).random((6, D)).astype(np.float32)
Z = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
HISTORY = {"epochs": [{"epoch": 1, "test_elbo": -40.5, "train_elbo": -41.0}], "steps": [[1, -50.0, -45.0, 5.0]]}


def meta(**kw):
    return {"dataset": "tiny", "num_pixels": D, "image_shape": [8, 8], "steps_done": 7, "status": "complete", **kw}


def save(path, config, history=HISTORY, optimizer=None):
    model = VAE(config, D)
    save_run(path, model, config, history, meta(), optimizer)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A run with a 5-d latent and a learned σ set away from its initial value."""
    config = Config(dataset="tiny.npz", latent_dim=5, hidden=(16,), likelihood="gaussian", sigma="learned", seed=3)
    model = VAE(config, D)
    model.raw_sigma.assign(-0.7)
    path = tmp_path_factory.mktemp("runs") / "good"
    save_run(path, model, config, HISTORY, meta())
    return path, model, config


def damaged_copy(saved, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(saved[0], copy)
    return copy


# -- round trip -------------------------------------------------------------------------
def test_round_trip_gives_identical_outputs(saved):
    path, model, config = saved
    run = load_run(path)
    assert run.name == "good" and run.path == path and run.config == config
    assert run.history == HISTORY and run.final == HISTORY["epochs"][-1] and run.epochs == HISTORY["epochs"]
    assert run.meta["steps_done"] == 7 and run.meta["format"] == checkpoints.FORMAT
    a, b = model.named_weights(), run.model.named_weights()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    q1, q2 = model.posterior(X), run.model.posterior(X)
    np.testing.assert_array_equal(q1.mean(), q2.mean())
    np.testing.assert_array_equal(q1.stddev(), q2.stddev())
    np.testing.assert_array_equal(model.likelihood(Z).mean(), run.model.likelihood(Z).mean())
    assert float(run.model.sigma) == float(model.sigma) != pytest.approx(1.0)


def test_latent_size_comes_from_the_checkpoint(saved):
    run = load_run(saved[0])
    assert run.config.latent_dim == 5 and run.model.config.latent_dim == 5
    assert run.model.encode_mean(X).shape == (6, 5)
    assert run.model.num_pixels == D


def test_optimizer_state_round_trip(tmp_path):
    config = Config(latent_dim=2, hidden=(8,))
    model = VAE(config, D)
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    rng = np.random.default_rng(2)
    for v in opt.variables:
        v.assign(rng.normal(size=tuple(v.shape)).astype(v.dtype) if len(v.shape) else np.asarray(11, v.dtype))
    save_run(tmp_path, model, config, HISTORY, meta(), opt)
    fresh = keras.optimizers.Adam(1e-3)
    assert checkpoints.load_optimizer_state(tmp_path, fresh, model.trainable_variables)
    assert len(fresh.variables) == len(opt.variables)
    for a, b in zip(opt.variables, fresh.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(fresh.iterations.numpy()) == 11
    (tmp_path / "optimizer.npz").unlink()
    assert checkpoints.load_optimizer_state(tmp_path, fresh, model.trainable_variables) is False


# -- damaged runs: the error names the file ---------------------------------------------------
def truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def foreign_weights(p):
    np.savez(p, some_other_model=np.zeros(3))


def wrong_shapes(p):
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["encoder/enc_0/kernel"] = np.zeros((D, 17), np.float32)
    np.savez(p, **arrays)


def edit_json(**changes):
    def edit(p):
        d = json.loads(p.read_text())
        d.update(changes)
        p.write_text(json.dumps(d))
    return edit


@pytest.mark.parametrize("file, damage, pattern", [
    ("weights.npz", lambda p: p.unlink(), "is missing"),
    ("weights.npz", truncate, "not a readable weights file"),
    ("weights.npz", lambda p: p.write_bytes(b"\x00" * 100), "not a readable weights file"),
    ("weights.npz", foreign_weights, "does not fit this model: missing"),
    ("weights.npz", wrong_shapes, r"encoder/enc_0/kernel has shape \(64, 17\), the model needs \(64, 16\)"),
    ("config.json", lambda p: p.write_text("{\"latent_dim\": 5,"), "not valid JSON"),
    ("config.json", lambda p: p.write_text("[1, 2]"), "should hold a JSON object"),
    ("config.json", lambda p: p.unlink(), "is missing"),
    ("config.json", edit_json(config_version=99), "config_version 99 is not supported"),
    ("config.json", edit_json(latent_dim=0), "latent_dim must be between 1 and 256"),
    ("config.json", edit_json(colour="red"), "unknown config field"),
    ("meta.json", lambda p: p.write_text(json.dumps({"format": "keras-model", "num_pixels": 64})), "is not a VAE Lab run"),
    ("meta.json", edit_json(format_version=99), "run format version 99 is not supported"),
    ("meta.json", edit_json(num_pixels=0), "has no valid num_pixels"),
    ("meta.json", lambda p: p.write_bytes(b"\xff\xfe garbage"), "not valid JSON"),
    ("meta.json", edit_json(num_pixels="sixty-four"), "has no valid num_pixels"),
    ("history.json", lambda p: p.unlink(), "is missing"),
    ("history.json", lambda p: p.write_text('{"epochs": [1, 2], "steps": []}'), "should hold"),
    ("history.json", lambda p: p.write_text('{"epochs": {"1": {}}}'), "should hold"),
])
def test_damaged_run_refused_naming_the_file(saved, tmp_path, file, damage, pattern):
    copy = damaged_copy(saved, tmp_path)
    damage(copy / file)
    with pytest.raises(CheckpointError, match=pattern) as e:
        load_run(copy)
    assert str(copy / file) in str(e.value)


def test_no_run_there(tmp_path):
    with pytest.raises(CheckpointError, match="no run at"):
        load_run(tmp_path / "absent")


# -- run names ---------------------------------------------------------------------------------
BAD_NAMES = ["../evil", "..", "a/../../b", "a/b", "/etc", "a\\b", "", " ", "x" * 65, ".hidden", "-flag", "a..b",
             "abc\n", "a\nb", "tab\there", "nul\x00", "bell\x07", "space name", "ü-umlaut", None, 5]
GOOD_NAMES = ["a", "fashion-default", "run_1.2", "A" * 64, "2d", "v1.0-final_b"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_unsafe_run_names_refused(name, tmp_path):
    with pytest.raises(CheckpointError, match="is not allowed"):
        check_run_name(name)
    with pytest.raises(CheckpointError):
        run_dir(name, tmp_path)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_safe_run_names_accepted_and_stay_under_root(name, tmp_path):
    assert check_run_name(name) == name
    path = run_dir(name, tmp_path)
    assert path == tmp_path.resolve() / name and path.parent == tmp_path.resolve()


def test_run_dir_through_a_symlinked_root(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert run_dir("r1", tmp_path / "link") == (tmp_path / "real" / "r1").resolve()


def test_default_root_is_the_repo_checkpoints_dir():
    assert checkpoints.DEFAULT_ROOT.name == "checkpoints"
    assert (checkpoints.DEFAULT_ROOT.parent / "vae_tf" / "checkpoints.py").exists()


# -- listing ---------------------------------------------------------------------------------
def test_list_runs_one_row_per_run_with_errors(tmp_path):
    save(tmp_path / "alpha", Config(latent_dim=2, hidden=(16, 8)))
    save(tmp_path / "beta", Config(latent_dim=3, hidden=(8,), decoder="linear", likelihood="gaussian", sigma=0.2),
         history={"epochs": [], "steps": []})
    save(tmp_path / "broken", Config(latent_dim=2, hidden=(8,)))
    (tmp_path / "broken" / "meta.json").write_text(json.dumps({"format": "something-else"}))
    save(tmp_path / "bad-history", Config(latent_dim=2, hidden=(8,)))
    (tmp_path / "bad-history" / "history.json").write_text('{"epochs": ["not an epoch"]}')
    (tmp_path / ".partial").mkdir()  # hidden directories and loose files are not runs
    (tmp_path / "notes.txt").write_text("hi")

    df = list_runs(tmp_path)
    assert isinstance(df, pd.DataFrame) and len(df) == 4
    assert df["name"].tolist() == ["alpha", "bad-history", "beta", "broken"]
    rows = df.set_index("name")
    assert rows.loc["alpha", "error"] == "" and rows.loc["beta", "error"] == ""
    assert "meta.json" in rows.loc["broken", "error"] and "not a VAE Lab run" in rows.loc["broken", "error"]
    assert "history.json" in rows.loc["bad-history", "error"]
    assert rows.loc["alpha", "latent_dim"] == 2 and rows.loc["beta", "latent_dim"] == 3
    assert rows.loc["alpha", "hidden"] == "16,8" and rows.loc["beta", "decoder"] == "linear"
    assert rows.loc["alpha", "test_elbo"] == -40.5 and rows.loc["alpha", "status"] == "complete"
    assert pd.isna(rows.loc["beta", "test_elbo"])  # no epoch finished yet
    assert list(df.columns[:4]) == ["name", "status", "dataset", "latent_dim"] and "error" in df.columns


def test_list_runs_empty_root(tmp_path):
    df = list_runs(tmp_path)
    assert len(df) == 0 and {"name", "error", "test_elbo"} <= set(df.columns)


# -- atomic writes ---------------------------------------------------------------------------
def test_save_leaves_no_temporary_files(tmp_path):
    config = Config(latent_dim=2, hidden=(8,))
    model = VAE(config, D)
    opt = keras.optimizers.Adam()
    opt.build(model.trainable_variables)
    for _ in range(2):  # a second save overwrites the first in place
        save_run(tmp_path, model, config, HISTORY, meta(), opt)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["config.json", "history.json", "meta.json", "optimizer.npz", "weights.npz"]
    assert all(oct(p.stat().st_mode & 0o777) == oct(0o644) for p in tmp_path.iterdir())
    assert json.loads((tmp_path / "meta.json").read_text())["versions"]["keras"] == keras.__version__


def test_failed_write_keeps_the_old_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "history.json"
    checkpoints.atomic_write_bytes(target, b'{"old": 1}')

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.atomic_write_bytes(target, b'{"new": 2}')
    assert target.read_bytes() == b'{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]  # the temporary file is gone
