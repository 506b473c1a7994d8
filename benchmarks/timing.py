"""Timing: rates from interleaved rounds, and the ceiling (TensorFlow's own matmul kernels alone)."""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

import tensorflow as tf

from .flops import matmul_flops


def interleaved_rates(fns: dict, work: dict, repeats: int) -> dict:
    """{name: median work/s}: every fn warmed up once, then timed in turn, `repeats` rounds."""
    return {name: statistics.median(r) for name, r in interleaved_rounds(fns, work, repeats).items()}


def interleaved_rounds(fns: dict, work: dict, repeats: int, warm_up: bool = True) -> dict:
    """{name: [work/s of each round]}: every fn (warmed up once) timed in turn, `repeats` rounds, so that
    round r of one fn and round r of another ran seconds apart, under the same load."""
    if warm_up:
        for fn in fns.values():
            fn()
    rates = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            rates[name].append(work[name] / (time.perf_counter() - t))
    return rates


# One process per core, each multiplying 512×512 matrices with one BLAS thread: compute and memory
# traffic that competes with the benchmark for every core, as other work on a shared machine does.
_BURNER = ("import os; os.environ['OPENBLAS_NUM_THREADS'] = os.environ['OMP_NUM_THREADS'] = '1'\n"
           "import numpy as np\na = np.random.rand(512, 512)\nwhile True: a = (a @ a) / 512")


@contextmanager
def busy_machine(processes: int):
    """A busy machine for the block: `processes` CPU-burning processes beside this one, killed on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", _BURNER]) for _ in range(processes)]
    try:
        time.sleep(1.0)  # let them start (numpy's import) before anything is timed
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def matmul_chain(matmuls, seconds: float = 0.3):
    """(fn, FLOPs per call): fn runs the given matmuls over and over for ~`seconds` with TensorFlow's own
    kernels (oneDNN on x86). Each product is sliced to one number: a plain graph computes the whole
    product anyway (XLA would not, which is why this runs without it), and nothing else is timed."""
    pairs = [(tf.random.normal([k, m] if ta else [m, k]), tf.random.normal([n, k] if tb else [k, n]), ta, tb)
             for m, k, n, ta, tb in matmuls]

    @tf.function
    def chain(iters):
        acc = tf.constant(0.0)
        for _ in tf.range(iters):
            for a, b, ta, tb in pairs:
                acc += tf.matmul(a, b, transpose_a=ta, transpose_b=tb)[0, 0]
        return acc

    chain(tf.constant(1)).numpy()
    t = time.perf_counter()
    chain(tf.constant(3)).numpy()
    iters = max(3, int(seconds / max((time.perf_counter() - t) / 3, 1e-6)))
    return (lambda: chain(tf.constant(iters)).numpy()), iters * matmul_flops(matmuls)
