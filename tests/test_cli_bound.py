"""evaluate --estimator ais, --gap-anatomy and --bdmc on tiny runs: the fields, per image, against the closed form."""
import contextlib
import io
import json

import numpy as np
import pytest

from vae_tf.__main__ import main

TINY = ["--epochs", "1", "--latent-dim", "2", "--hidden", "16", "--batch-size", "32", "--max-train-images", "128",
        "--learning-rate", "0.01", "--seed", "3"]
FAST = ["--num-images", "4", "--k", "200", "--ais-steps", "200", "--ais-chains", "16"]
pytestmark = pytest.mark.slow  # each evaluate compiles its AIS and q* afresh (a new model each time)


def train(npz, out, *flags):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", "--data", str(npz), "--out", str(out), *TINY, *flags]) == 0
    return out


@pytest.fixture(scope="module")
def runs(npz, tmp_path_factory):
    root = tmp_path_factory.mktemp("bound-runs")
    return {"linear": train(npz, root / "linear", "--decoder", "linear", "--likelihood", "gaussian", "--sigma", "0.5"),
            "mlp": train(npz, root / "mlp"), "mlp3": train(npz, root / "mlp3", "--latent-dim", "3")}


def evaluate(capsys, run, *flags) -> dict:
    assert main(["evaluate", "--checkpoint", str(run), *FAST, "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_ais_gap_and_bdmc_on_the_closed_form(runs, capsys):
    """A linear-Gaussian run: AIS replaces IS as log_px and sits on the exact answer, per image too; the gap's
    anatomy takes the exact log p(x); BDMC's sandwich holds the simulated images' exact log p(x)."""
    r = evaluate(capsys, runs["linear"], "--estimator", "ais", "--gap-anatomy", "--bdmc", "--bdmc-images", "4",
                 "--per-image")
    assert r["estimator"] == "ais" and r["ais_steps"] == 200 and r["ais_chains"] == 16 and "is_log_px" in r
    assert abs(r["log_px"] - r["exact_log_px"]) < 0.1
    assert r["gap"] == pytest.approx(r["log_px"] - r["elbo"], abs=1e-6)
    assert r["gap_anatomy_log_px"] == "exact" and r["q_star_family"] == "diagonal" and r["q_star_converged"] == 4
    assert r["approximation_gap"] == pytest.approx(r["exact_log_px"] - r["elbo_optimal_q"], abs=1e-6)
    assert r["amortization_gap"] > -3 * r["amortization_gap_mc_stderr"] and r["approximation_gap"] > -0.05
    assert r["bdmc_lower"] - 0.2 <= r["bdmc_exact_log_px"] <= r["bdmc_upper"] + 0.2
    assert r["bdmc_width"] == pytest.approx(r["bdmc_upper"] - r["bdmc_lower"]) and r["bdmc_num_images"] == 4
    rows = r["per_image"]
    assert len(rows) == 4 and len(r["bdmc_per_image"]) == 4
    for row in rows:
        assert abs(row["log_px"] - row["exact_log_px"]) < 0.05 + 4 * row["log_px_stderr"], row
        assert row["approximation_gap"] == pytest.approx(row["exact_log_px"] - row["elbo_optimal_q"], abs=1e-6)
        assert {"is_log_px", "amortization_gap_stderr", "approximation_gap_stderr", "elbo_optimal_q_stderr"} <= set(row)
    assert r["log_px"] == pytest.approx(np.mean([row["log_px"] for row in rows]), abs=1e-9)


def test_gap_anatomy_takes_the_grid_on_a_2d_latent_and_ais_beyond(runs, capsys):
    """A Bernoulli MLP: on a 2-D latent the approximation gap is measured against the grid integral; on a 3-D one
    against AIS (run for it, IS stays log_px); the printed report names both parts and the sandwich."""
    g = evaluate(capsys, runs["mlp"], "--gap-anatomy")
    assert g["gap_anatomy_log_px"] == "grid" and g["grid_num_images"] == 4
    assert g["approximation_gap"] == pytest.approx(g["grid_log_px"] - g["elbo_optimal_q"], abs=1e-6)
    r = evaluate(capsys, runs["mlp3"], "--gap-anatomy")
    assert r["estimator"] == "is" and "is_log_px" not in r and r["gap_anatomy_log_px"] == "ais"
    assert r["elbo_optimal_q"] >= r["gap_anatomy_elbo"] - 3 * r["amortization_gap_mc_stderr"]
    assert "per_image" not in r and "bdmc_lower" not in r
    assert main(["evaluate", "--checkpoint", str(runs["mlp"]), *FAST, "--ais-steps", "20", "--bdmc",
                 "--bdmc-images", "2", "--gap-anatomy"]) == 0
    text = capsys.readouterr().out
    assert "amortization" in text and "approximation" in text and "BDMC" in text
