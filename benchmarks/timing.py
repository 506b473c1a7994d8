"""Timing: rates from interleaved rounds, and the ceiling (TensorFlow's own matmul kernels alone)."""
from __future__ import annotations

import statistics
import time

import tensorflow as tf

from .flops import matmul_flops


def interleaved_rates(fns: dict, work: dict, repeats: int) -> dict:
    """{name: median work/s}: every fn warmed up once, then timed in turn, `repeats` rounds."""
    for fn in fns.values():
        fn()
    rates = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            rates[name].append(work[name] / (time.perf_counter() - t))
    return {name: statistics.median(r) for name, r in rates.items()}


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
