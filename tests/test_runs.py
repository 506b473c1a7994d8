"""Runs on disk: round trips, damaged files, run names, listing, atomic writes, the health check,
summaries, stamps for cache keys, and marking a run diverged."""
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pandas as pd
import pytest

from vae_tf import runs
from vae_tf.config import Config
from vae_tf.model import VAE
from vae_tf.runs import CheckpointError, RunRef, check_run_name, list_runs, load_run, run_dir, save_run

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
    assert run.meta["steps_done"] == 7 and run.meta["format"] == runs.FORMAT
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
    assert runs.load_optimizer_state(tmp_path, fresh, model.trainable_variables)
    assert len(fresh.variables) == len(opt.variables)
    for a, b in zip(opt.variables, fresh.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(fresh.iterations.numpy()) == 11
    (tmp_path / "optimizer.npz").unlink()
    assert runs.load_optimizer_state(tmp_path, fresh, model.trainable_variables) is False


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
    ("meta.json", lambda p: p.write_text(json.dumps({"format": "keras-model", "num_pixels": 64})),
     "is not a VAE Lab run"),
    ("meta.json", edit_json(format_version=99), "run format version 99 is not supported"),
    ("meta.json", edit_json(num_pixels=0), "num_pixels is out of range: 0"),
    ("meta.json", lambda p: p.write_bytes(b"\xff\xfe garbage"), "not valid JSON"),
    ("meta.json", edit_json(num_pixels="sixty-four"), "num_pixels should be a number; got str"),
    ("history.json", lambda p: p.unlink(), "is missing"),
    ("history.json", lambda p: p.write_text('{"epochs": [1, 2], "steps": []}'), "should hold"),
    ("history.json", lambda p: p.write_text('{"epochs": {"1": {}}}'), "should hold"),
])
def test_damaged_run_refused_naming_the_file(saved, tmp_path, file, damage, pattern):
    copy = damaged_copy(saved, tmp_path)
    damage(copy / file)
    with pytest.raises(CheckpointError, match=pattern) as e:
        load_run(copy)
    assert f"copy/{file}" in str(e.value) and str(copy) not in str(e.value)  # named, without the server's path


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
    assert runs.DEFAULT_ROOT.name == "checkpoints"
    assert (runs.DEFAULT_ROOT.parent / "vae_tf" / "runs" / "__init__.py").exists()


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
    runs.atomic_write_bytes(target, b'{"old": 1}')

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        runs.atomic_write_bytes(target, b'{"new": 2}')
    assert target.read_bytes() == b'{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]  # the temporary file is gone


# -- the health check, without TensorFlow ----------------------------------------------------
def test_run_problem_is_none_for_a_whole_run_and_names_what_is_wrong(saved, tmp_path):
    root = saved[0].parent
    assert runs.run_problem(saved[0]) is None
    assert runs.run_problem(RunRef.of("good", root)) is None
    copy = damaged_copy(saved, tmp_path)
    (copy / "weights.npz").unlink()
    assert runs.run_problem(copy) == "weights.npz is missing"
    (copy / "weights.npz").write_bytes(b"\x00" * 100)
    assert runs.run_problem(copy).startswith("weights.npz is not a readable weights file")
    np.savez(copy / "weights.npz", some_other_model=np.zeros(3))
    assert runs.run_problem(copy) == "weights.npz is not a VAE Lab weights file (foreign?)"
    (copy / "meta.json").write_text(json.dumps({"format": "keras-model"}))
    problem = runs.run_problem(copy)
    assert problem.startswith("meta.json is not a VAE Lab run") and str(copy) not in problem  # the folder left out
    assert runs.run_problem(tmp_path / "bad name") == runs.BAD_NAME
    assert runs.run_problem(RunRef(str(tmp_path), "../evil", 0)) == runs.BAD_NAME


def test_run_problem_catches_a_damaged_weights_member(saved, tmp_path):
    """A byte flipped inside a member keeps the zip's directory readable: the CRC check names the member,
    or the damaged compressed stream is reported; neither check raises."""
    copy = damaged_copy(saved, tmp_path)
    weights = copy / "weights.npz"
    original = weights.read_bytes()
    with zipfile.ZipFile(weights) as z:
        info = z.getinfo("encoder/enc_0/kernel.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)

    def flipped(offset):
        raw = bytearray(original)
        raw[start + offset] ^= 0xFF
        weights.write_bytes(bytes(raw))

    flipped(info.compress_size // 2)
    assert runs.run_problem(copy) == "weights.npz is damaged (encoder/enc_0/kernel.npy does not match its checksum)"
    for offset in range(0, info.compress_size, max(1, info.compress_size // 40)):
        flipped(offset)
        problem = runs.run_problem(copy)
        assert problem is None or problem.startswith("weights.npz is damaged"), problem
        if problem is not None:  # what the check saw, loading sees too: an error naming the file
            with pytest.raises(CheckpointError, match="weights.npz"):
                load_run(copy)


# -- summaries, names and stamps -----------------------------------------------------------------
def test_read_summary_holds_config_meta_and_final_epoch(saved, tmp_path):
    path, _, config = saved
    summary = runs.read_summary(path)
    assert summary["config"] == config.to_dict()
    assert summary["meta"]["num_pixels"] == D and summary["meta"]["format"] == runs.FORMAT
    assert summary["final"] == HISTORY["epochs"][-1]
    assert runs.read_summary(RunRef.of("good", path.parent)) == summary
    empty = tmp_path / "empty"
    save(empty, Config(latent_dim=2, hidden=(8,)), history={"epochs": [], "steps": []})
    assert runs.read_summary(empty)["final"] == {}
    with pytest.raises(CheckpointError, match="is missing"):
        runs.read_summary(tmp_path / "absent")


def test_run_names_are_whole_runs_sorted(tmp_path):
    assert runs.run_names(tmp_path / "absent") == []
    for name in ("b-run", "a-run"):
        save(tmp_path / name, Config(latent_dim=2, hidden=(8,)))
    (tmp_path / "half").mkdir()  # no meta.json yet: a run still being written
    (tmp_path / "half" / "weights.npz").write_bytes(b"")
    save(tmp_path / ".hidden", Config(latent_dim=2, hidden=(8,)))
    (tmp_path / "loose.json").write_text("{}")
    assert runs.run_names(tmp_path) == ["a-run", "b-run"]
    assert runs.is_run(tmp_path / "a-run") and not runs.is_run(tmp_path / "half")


def test_run_ref_stamp_changes_when_the_run_is_rewritten(tmp_path):
    config = Config(latent_dim=2, hidden=(8,))
    assert runs.run_stamp("r1", tmp_path) == 0 and RunRef.of("r1", tmp_path).stamp == 0
    model = save(tmp_path / "r1", config)
    ref = RunRef.of("r1", tmp_path)
    assert ref.stamp == (tmp_path / "r1" / "meta.json").stat().st_mtime_ns > 0
    assert ref == RunRef.of("r1", tmp_path) and hash(ref) == hash(RunRef.of("r1", tmp_path))
    assert ref.path == tmp_path.resolve() / "r1" and ref.root == str(tmp_path.resolve()) and ref.name == "r1"
    assert load_run(ref).name == "r1"
    with pytest.raises(AttributeError):
        ref.stamp = 5  # frozen: a cache key cannot change under the cache
    time.sleep(0.01)
    save_run(tmp_path / "r1", model, config, HISTORY, meta(steps_done=8))
    newer = RunRef.of("r1", tmp_path)
    assert newer.stamp > ref.stamp and newer != ref and len({ref, newer}) == 2


def test_created_is_kept_across_saves(tmp_path):
    config = Config(latent_dim=2, hidden=(8,))
    model = save(tmp_path, config)
    first = json.loads((tmp_path / "meta.json").read_text())
    assert first["created"]
    (tmp_path / "meta.json").write_text(json.dumps({**first, "created": "2020-01-01T00:00:00+0000"}))
    save_run(tmp_path, model, config, HISTORY, meta(steps_done=9))
    again = json.loads((tmp_path / "meta.json").read_text())
    assert again["created"] == "2020-01-01T00:00:00+0000" and again["steps_done"] == 9


# -- marking a run diverged ---------------------------------------------------------------------
def test_mark_diverged_rewrites_meta_and_keeps_the_rest(saved, tmp_path):
    copy = damaged_copy(saved, tmp_path)
    weights_before = (copy / "weights.npz").read_bytes()
    meta_out = runs.mark_diverged(copy, "the loss became nan at step 7")
    on_disk = runs.read_meta(copy)
    assert meta_out == on_disk
    assert on_disk["status"] == "diverged" and on_disk["diverged"] == "the loss became nan at step 7"
    assert on_disk["steps_done"] == 7 and on_disk["format"] == runs.FORMAT  # the rest of meta.json as it was
    assert (copy / "weights.npz").read_bytes() == weights_before
    assert load_run(copy).meta["status"] == "diverged"
    assert sorted(p.name for p in copy.iterdir()) == ["config.json", "history.json", "meta.json", "weights.npz"]
    with pytest.raises(CheckpointError, match="is missing"):
        runs.mark_diverged(tmp_path / "absent", "x")


def test_runs_needs_no_tensorflow():
    """The sidebar lists runs and checks them before TensorFlow is imported: runs.py must not import it."""
    code = ("import sys, vae_tf.runs as r, vae_tf.config, vae_tf.data, vae_tf.latent, vae_tf.plots; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=runs.DEFAULT_ROOT.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- a kill inside the epoch-end checkpoint write -------------------------------------------------------------
# The worker (python -m vae_tf.worker), made to stop in its second checkpoint once the new weights, Adam's
# moments and the history are staged beside the old files, before any is renamed: the test kills it there
# (SIGKILL, as the OOM killer or a killed server would).
_PAUSED_WORKER = r"""
import runpy, sys, time
from vae_tf.runs import files, writes
real, saves = writes._staged, []
def staged(path, data):
    tmp = real(path, data)
    saves.append(path.name)
    if path.name == files.HISTORY_FILE and saves.count(files.WEIGHTS_FILE) == 2:
        sys.stderr.write("IN THE WRITE\n")
        sys.stderr.flush()
        time.sleep(600)
    return tmp
writes._staged = staged
runpy.run_module("vae_tf.worker", run_name="__main__")
"""


def test_a_kill_inside_the_epoch_end_write_leaves_the_last_whole_epoch(tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    path = tmp_path / "killed-in-write"
    config = Config(hidden=(32,), latent_dim=2, epochs=4, max_train_images=512, seed=3)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen([sys.executable, "-c", _PAUSED_WORKER], cwd=repo, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(json.dumps({"config": config.to_dict(), "run_dir": str(path), "resume": False}) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 240
        for line in proc.stderr:  # TensorFlow's log lines, then ours
            if "IN THE WRITE" in line or time.monotonic() > deadline:
                break
        assert "IN THE WRITE" in line, "the worker never reached its second checkpoint"
        os.kill(proc.pid, 9)
    finally:
        proc.kill()
        proc.wait(30)

    left = sorted(p.name for p in path.glob(f".*{runs.TMP_SUFFIX}"))
    assert [n.split(".")[1] for n in left] == ["history", "optimizer", "weights"], left  # staged, never renamed
    meta, history = runs.read_meta(path), runs.read_history(path)
    assert meta["status"] == "training" and meta["epochs_done"] == 1 and len(history["epochs"]) == 1
    with np.load(path / runs.WEIGHTS_FILE) as w:
        assert int(w[runs.STEPS_KEY]) == meta["steps_done"]  # epoch 1's weights, not the staged epoch 2's
    ref = RunRef.of(path.name, tmp_path)
    assert runs.run_problem(ref) is None and list(list_runs(tmp_path)["name"]) == [path.name]
    assert load_run(path).meta["steps_done"] == meta["steps_done"]
    # what the server does when it finds the worker gone: marked, its last whole epoch kept, the staged files gone
    runs.mark_interrupted(path, "the training process ended unexpectedly (exit code -9)")
    meta = runs.read_meta(path)
    assert meta["status"] == "interrupted" and meta["epochs_done"] == 1 and not list(path.glob(".*"))
    assert load_run(path).meta["steps_done"] == meta["steps_done"]
