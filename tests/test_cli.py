"""The command line: train, evaluate, runs; flags generated from FIELDS; one-line errors."""
import contextlib
import io
import json
import math
import shutil
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vae_tf.__main__ import _flag, main
from vae_tf.runs import load_run
from vae_tf.config import FIELDS
from vae_tf.evaluate import evaluate_run

REPO = Path(__file__).resolve().parent.parent
TINY_FLAGS = ["--epochs", "1", "--latent-dim", "3", "--hidden", "16", "--batch-size", "32",
              "--max-train-images", "128", "--learning-rate", "0.01", "--seed", "4"]
EVAL_KEYS = {"elbo", "log_px", "gap", "elbo_stderr", "log_px_stderr", "ess_mean", "num_images", "k", "seconds"}


@pytest.fixture(scope="module")
def trained(npz, tmp_path_factory):
    """One run trained in-process through main(), with what it printed (module scope: no capsys, so redirect)."""
    out = tmp_path_factory.mktemp("runs") / "cli-run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["train", "--data", str(npz), "--out", str(out), "--json", *TINY_FLAGS])
    return rc, out, stdout.getvalue(), stderr.getvalue()


def test_train_writes_a_run_that_loads(trained, npz):
    rc, out, stdout, stderr = trained
    assert rc == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["run"] == str(out) and summary["epochs_done"] == 1.0
    assert math.isfinite(summary["test_elbo"]) and summary["test_elbo"] < 0
    assert "training" in stderr and "epoch 1:" in stderr
    run = load_run(out)
    c = run.config
    assert (c.dataset, c.epochs, c.latent_dim, c.hidden, c.batch_size, c.max_train_images, c.learning_rate, c.seed) == \
        (str(npz), 1, 3, (16,), 32, 128, 0.01, 4)
    assert run.meta["status"] == "complete" and run.meta["steps_done"] == 128 // 32
    assert run.final["test_elbo"] == pytest.approx(summary["test_elbo"])
    assert run.model.encode_mean(np.zeros((2, 64), np.float32)).shape == (2, 3)


def test_evaluate_json(trained, capsys):
    out = trained[1]
    assert main(["evaluate", "--checkpoint", str(out), "--k", "16", "--num-images", "12", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= EVAL_KEYS
    assert result["num_images"] == 12 and result["k"] == 16 and result["seconds"] > 0
    assert all(math.isfinite(result[k]) for k in EVAL_KEYS)
    assert result["gap"] == pytest.approx(result["log_px"] - result["elbo"], abs=1e-4)
    assert result["log_px"] > result["elbo"] - 0.5  # log p̂_K is (in expectation) above the ELBO
    assert 1 <= result["ess_mean"] <= 16 and result["elbo_stderr"] > 0


def test_evaluate_json_per_image(trained, capsys):
    """--per-image adds one entry per image under stable names; the summary counts the unreliable images."""
    out = trained[1]
    assert main(["evaluate", "--checkpoint", str(out), "--k", "100", "--num-images", "6", "--json", "--per-image"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["per_image"]
    assert len(rows) == 6 and [r["index"] for r in rows] == list(range(6))
    for r in rows:
        assert {"log_px", "log_px_stderr", "elbo", "gap", "ess", "pareto_k", "unreliable"} <= set(r)
        assert r["gap"] == pytest.approx(r["log_px"] - r["elbo"], abs=1e-9)
        assert r["log_px"] >= r["elbo_same_draws"] - 1e-9 and r["log_px_stderr"] > 0 and 1 <= r["ess"] <= 100
        assert r["unreliable"] == (r["pareto_k"] is not None and r["pareto_k"] > 0.7)
    assert result["unreliable_images"] == sum(r["unreliable"] for r in rows)
    assert result["log_px"] == pytest.approx(np.mean([r["log_px"] for r in rows]), abs=1e-9)
    assert main(["evaluate", "--checkpoint", str(out), "--k", "16", "--num-images", "3", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "per_image" not in plain and "unreliable_images" in plain


def test_evaluate_run_is_what_evaluate_json_prints(trained, capsys):
    """The CLI is thin: --json prints evaluate_run's dict, field for field (the field names are public)."""
    out = trained[1]
    result = evaluate_run(out, num_images=5, k=8, seed=3)
    assert main(["evaluate", "--checkpoint", str(out), "--k", "8", "--num-images", "5", "--seed", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == list(result)
    assert printed["checkpoint"] == str(out) and printed["split"] == "test" and printed["devices"] == 1
    for key in EVAL_KEYS - {"seconds"}:
        assert printed[key] == pytest.approx(result[key], abs=1e-9), key
    with pytest.raises(ValueError, match="split must be one of test, train"):
        evaluate_run(out, split="validation")


def test_bench_runs_the_benchmark_outside_the_library(capfd):
    """`python -m vae_tf bench` hands its flags to `python -m benchmarks`, a process of its own."""
    assert main(["bench", "--help"]) == 0
    text = capfd.readouterr().out
    assert "python -m benchmarks" in text and "--quick" in text and "--skip-app" in text


def test_evaluate_text(trained, capsys):
    assert main(["evaluate", "--checkpoint", str(trained[1]), "--k", "4", "--num-images", "3"]) == 0
    text = capsys.readouterr().out
    assert "ELBO" in text and "log p(x) (IS)" in text and "K = 4" in text and "3 images in" in text


def test_runs_lists_the_run(trained, capsys):
    assert main(["runs", "--root", str(trained[1].parent)]) == 0
    assert "cli-run" in capsys.readouterr().out


@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_resume_extends_a_run(trained, npz, capsys, tmp_path):
    copy = tmp_path / "resumed"
    shutil.copytree(trained[1], copy)
    flags = list(TINY_FLAGS)
    flags[flags.index("--epochs") + 1] = "2"
    assert main(["train", "--data", str(npz), "--out", str(copy), "--resume", "--json", *flags]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = load_run(copy)
    assert summary["epochs_done"] == 2.0 and run.meta["steps_done"] == 2 * (128 // 32) and run.config.epochs == 2
    assert [e["epoch"] for e in run.epochs] == [1, 2]
    assert run.epochs[0] == load_run(trained[1]).epochs[0]  # the first epoch is kept, not redone


def test_help_lists_every_config_field(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name in FIELDS:
        assert (_flag(name) if name != "dataset" else "--data") in text, name
    assert "0 to 2147483647" in text and "1 to 256" in text and "--out" in text and "--resume" in text


@pytest.mark.parametrize("flags, field", [
    (["--latent-dim", "0"], "latent_dim must be between 1 and 256; got 0"),
    (["--latent-dim", "two"], "latent_dim must be a whole number; got 'two'"),
    (["--learning-rate", "5"], "learning_rate must be between 1e-06 and 1; got 5"),
    (["--hidden", "a,b"], "hidden must be comma-separated whole numbers"),
    (["--sigma", "-1"], "sigma must be between 0.01 and 10"),
    (["--batch-size", "0"], "batch_size must be between 1 and 4096"),
    (["--epochs", "1", "--kl-warmup-epochs", "2"], "kl_warmup_epochs must be between 0 and epochs (1)"),
    (["--objective", "iwae", "--beta", "0.5"], "beta must be 1 with the iwae objective"),
    (["--data", "images.csv"], "dataset must be one of"),
])
def test_bad_values_exit_2_with_one_line(flags, field, capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and field in err[0]
    assert not (tmp_path / "r").exists()


def test_bad_choice_is_refused_by_argparse(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["train", "--out", str(tmp_path / "r"), "--decoder", "cnn"])
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and "--decoder" in last and "'cnn'" in last


def test_existing_out_and_bad_names_refused(trained, npz, capsys, tmp_path):
    before = (trained[1] / "weights.npz").read_bytes()
    assert main(["train", "--data", str(npz), "--out", str(trained[1]), *TINY_FLAGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "already holds a run" in err[0]
    assert (trained[1] / "weights.npz").read_bytes() == before
    assert main(["train", "--data", str(npz), "--out", str(tmp_path / "bad name!"), *TINY_FLAGS]) == 2
    assert "is not allowed" in capsys.readouterr().err


def test_missing_data_and_checkpoint_are_one_line_errors(capsys, tmp_path):
    assert main(["train", "--data", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "r"), *TINY_FLAGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no such .npz file") and "Traceback" not in "".join(err)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nothing"), "--json"]) == 2
    assert capsys.readouterr().err.strip() == f"error: no run at {tmp_path / 'nothing'}"


def test_python_dash_m_train(npz, tmp_path):
    """One real subprocess: `python -m vae_tf train` works end to end."""
    out = tmp_path / "sub-run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "vae_tf", "train", "--data", str(npz), "--out", str(out), "--json",
                           *TINY_FLAGS], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["epochs_done"] == 1.0
    run = load_run(out)
    assert run.meta["status"] == "complete" and run.config.latent_dim == 3
    assert run.final["test_elbo"] == pytest.approx(summary["test_elbo"])
