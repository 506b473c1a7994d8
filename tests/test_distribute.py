"""Past one machine: `train --strategy mirrored|multiworker` and `evaluate --strategy mirrored`.

The CPU is split into two logical devices (tf.config.set_logical_device_configuration, which must run
before TensorFlow initialises its devices) in a subprocess, so the rest of the test session keeps its one
device: MirroredStrategy then trains on two replicas, each taking half of every batch. Two local processes
with a TF_CONFIG cluster run MultiWorkerMirroredStrategy. Either way the run must be the one-device run:
same batches, same draws, the gradient all-reduced — equal up to float round-off.

Run as a script (`python tests/test_distribute.py mirrored NPZ OUT`) this file is that subprocess.
"""
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
FLAGS = ["--epochs", "2", "--latent-dim", "2", "--hidden", "32", "--batch-size", "32", "--learning-rate", "0.01",
         "--seed", "1"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _cli(argv) -> tuple[int, str, str]:
    from vae_tf.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def child_mirrored(npz: str, out: str):
    """Two logical CPUs; one-device and mirrored runs and evaluations through the CLI; a JSON report."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    report = {"logical_cpus": len(tf.config.list_logical_devices("CPU"))}
    for name, extra in (("one", []), ("mirrored", ["--strategy", "mirrored"])):
        rc, stdout, stderr = _cli(["train", "--data", npz, "--out", f"{out}/{name}", "--json", *FLAGS, *extra])
        report[f"train_{name}"] = {"rc": rc, "summary": json.loads(stdout.strip().splitlines()[-1]),
                                   "stderr_head": stderr.splitlines()[0]}
    for name, extra in (("one", []), ("mirrored", ["--strategy", "mirrored"])):
        rc, stdout, _ = _cli(["evaluate", "--checkpoint", f"{out}/mirrored", "--k", "300", "--num-images", "40",
                              "--json", *extra])
        report[f"evaluate_{name}"] = {"rc": rc, "result": json.loads(stdout.strip().splitlines()[-1])}
    print(json.dumps(report))


@pytest.fixture(scope="module")
def mirrored(npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = subprocess.run([sys.executable, __file__, "mirrored", str(npz), str(out)], capture_output=True, text=True,
                          env=ENV, cwd=out, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), out


def assert_same_run(a, b, atol=1e-5):
    """Two runs of the same config: equal weights up to round-off, the same curves, both complete."""
    wa, wb = a.model.named_weights(), b.model.named_weights()
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=atol, err_msg=k)
    assert [s[0] for s in a.history["steps"]] == [s[0] for s in b.history["steps"]]
    np.testing.assert_allclose([s[1:] for s in a.history["steps"]], [s[1:] for s in b.history["steps"]], atol=1e-3)
    for ea, eb in zip(a.history["epochs"], b.history["epochs"], strict=True):
        for key in ("train_elbo", "test_elbo", "test_kl"):
            assert ea[key] == pytest.approx(eb[key], abs=1e-3), key
    assert a.meta["status"] == b.meta["status"] == "complete"


def test_mirrored_training_on_two_devices_matches_one_device(mirrored):
    from vae_tf.runs import load_run

    report, out = mirrored
    assert report["logical_cpus"] == 2
    assert report["train_one"]["rc"] == report["train_mirrored"]["rc"] == 0
    assert report["train_one"]["stderr_head"].endswith("on 1 device(s)")
    assert report["train_mirrored"]["stderr_head"].endswith("on 2 device(s)")  # two replicas, half a batch each
    one, two = load_run(out / "one"), load_run(out / "mirrored")
    assert_same_run(one, two)
    assert two.meta["steps_done"] == 2 * 512 // 32
    mirrored, one_device = report["train_mirrored"]["summary"], report["train_one"]["summary"]
    assert mirrored["test_elbo"] == pytest.approx(one_device["test_elbo"], abs=1e-4)


def test_mirrored_evaluate_splits_images_and_gives_the_one_device_estimate(mirrored):
    report, _ = mirrored
    one, two = report["evaluate_one"]["result"], report["evaluate_mirrored"]["result"]
    assert report["evaluate_one"]["rc"] == report["evaluate_mirrored"]["rc"] == 0
    assert (one["devices"], two["devices"]) == (1, 2)
    assert one["num_images"] == two["num_images"] == 40 and one["k"] == two["k"] == 300
    for key in ("elbo", "log_px", "gap", "ess_mean", "log_px_stderr"):
        assert two[key] == pytest.approx(one[key], rel=1e-6, abs=1e-5), key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multiworker_cluster_of_two_processes_matches_one_device(npz, tmp_path):
    """Two workers on this machine (TF_CONFIG, gRPC collectives): each computes its replica's half of every
    batch; only the chief (worker 0) writes the run, and it is the one-device run."""
    from vae_tf.runs import load_run

    # 1 epoch of 8 steps: the cluster is slow to start
    flags = [*FLAGS[:1], "1", *FLAGS[2:], "--max-train-images", "256"]
    ports = [_free_port(), _free_port()]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "vae_tf", "train", "--data", str(npz), "--out", str(tmp_path / f"worker{index}"),
             "--strategy", "multiworker", "--json", *flags],
            env={**ENV, "TF_CONFIG": json.dumps(tf_config)}, cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
        assert "on 2 device(s)" in stderr
    assert "the chief worker saves the run" in outputs[1][1] and "chief" not in outputs[0][1]
    assert not (tmp_path / "worker1").exists()  # one copy of the weights is written, by the chief

    rc, _, _ = _cli(["train", "--data", str(npz), "--out", str(tmp_path / "one"), "--json", *flags])
    assert rc == 0
    assert_same_run(load_run(tmp_path / "one"), load_run(tmp_path / "worker0"))
    summaries = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    assert summaries[0]["test_elbo"] == pytest.approx(summaries[1]["test_elbo"], abs=1e-6)  # workers agree


def test_evaluate_refuses_multiworker_with_a_reason(tmp_path):
    rc, _, err = _cli(["evaluate", "--checkpoint", str(tmp_path), "--strategy", "multiworker"])
    assert rc == 2 and "evaluate runs on one machine" in err and "--strategy mirrored" in err


if __name__ == "__main__":
    if sys.argv[1] == "mirrored":
        sys.path.insert(0, str(REPO))
        child_mirrored(sys.argv[2], sys.argv[3])
