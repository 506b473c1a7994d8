"""Past one machine: the default training in one process, and in a MultiWorkerMirroredStrategy cluster of two
processes on localhost (TF_CONFIG, gRPC collectives; each worker computes half of every batch and the
gradients are all-reduced), so that the cost of going distributed is known. Both are `python -m vae_tf train
--json` processes on the same work; the figure is the last epoch's images/s (the whole batch's images, as the
chief reports them), after the first epoch's compile. On one machine the two workers share its cores: the
scaling shows the collectives' overhead, not a speed-up.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

from . import REPO

FLAGS = ["--data", "fashion_mnist", "--epochs", "2", "--max-train-images", "16384", "--json"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(out, extra=(), env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vae_tf", "train", "--out", str(out), *FLAGS, *extra], cwd=REPO,
                            env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _images_per_sec(proc: subprocess.Popen) -> float:
    stdout, stderr = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {proc.returncode}")
    return float(json.loads(stdout.strip().splitlines()[-1])["images_per_sec"])


def distributed_figures() -> dict:
    tmp = tempfile.mkdtemp(prefix="vae_lab_dist_")
    try:
        one = _images_per_sec(_train(os.path.join(tmp, "one")))
        ports = [_free_port(), _free_port()]
        workers = []
        for index in range(2):
            config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker",
                                                                                        "index": index}}
            workers.append(_train(os.path.join(tmp, f"worker{index}"), ["--strategy", "multiworker"],
                                  {**ENV, "TF_CONFIG": json.dumps(config)}))
        rates = [_images_per_sec(w) for w in workers]
        return {"one_process": one, "two_processes": rates[0], "scaling": rates[0] / one}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_distributed(res: dict):
    try:
        d = distributed_figures()
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
        print(f"past one machine: not measured ({type(e).__name__}: {e})\n")
        return
    res.update({f"dist_{k}": v for k, v in d.items()})
    print(f"past one machine: the default model, 2 epochs of 16,384 images, last epoch's images/s (os.cpu_count() = "
          f"{os.cpu_count()})\n  one process {d['one_process']:,.0f}; MultiWorkerMirrored, two processes on "
          f"localhost {d['two_processes']:,.0f} ({d['scaling']:.2f}× one process)\n")
