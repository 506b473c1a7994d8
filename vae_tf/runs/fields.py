"""The fields of a run's meta.json and history.json that the app and CLI read, with their types and ranges.

A run folder may be damaged or hand-edited: every field used is checked here, once, by the run format's
reader (vae_tf.runs), before any page formats or sums it. A file that fails says which field and why,
and the run is left out of the picker with that reason instead of raising on every page.
"""
from __future__ import annotations

import math
import numbers

MAX_JSON_BYTES = 32 * 2**20  # a history of the longest training the app allows is well under 1 MB
STATUSES = ("training", "complete", "stopped", "diverged", "interrupted")
META_NUMBERS = {"steps_done": (0, 10**12), "steps_per_epoch": (1, 10**9), "epochs_done": (0, 10**6),
                "num_pixels": (1, 64 * 64), "num_train": (1, 10**9), "num_parameters": (0, 10**12)}
EPOCH_NUMBERS = ("epoch", "train_elbo", "train_recon", "train_kl", "test_elbo", "test_recon", "test_kl",
                 "kl_weight", "seconds", "images_per_sec")


class FieldError(ValueError):
    """A field of a run's JSON file with the wrong type or range; the message names it."""


def _number(value, name: str, lo=-math.inf, hi=math.inf, finite: bool = True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise FieldError(f"{name} should be a number; got {type(value).__name__}")
    if (finite and not math.isfinite(value)) or not lo <= value <= hi:
        raise FieldError(f"{name} is out of range: {value!r}")


def check_meta(meta: dict):
    for name, (lo, hi) in META_NUMBERS.items():
        if name in meta:
            _number(meta[name], name, lo, hi)
    if "status" in meta and meta["status"] not in STATUSES:
        raise FieldError(f"status should be one of {', '.join(STATUSES)}; got {str(meta['status'])[:40]!r}")
    shape = meta.get("image_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 2
                                  and all(isinstance(v, int) and 0 < v <= 64 for v in shape)):
        raise FieldError("image_shape should be [height, width], each 1 to 64")
    names = meta.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(v, str) for v in names)):
        raise FieldError("class_names should be a list of strings")


def check_history(history: dict):
    epochs, steps = history.get("epochs", []), history.get("steps", [])
    if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs) or not isinstance(steps, list):
        raise FieldError("it should hold {'epochs': [one object per epoch], 'steps': [...]}")
    for i, e in enumerate(epochs):
        for name in EPOCH_NUMBERS:
            if name in e:  # a diverged run's NaN may sit in a training average, never in a test one
                _number(e[name], f"epochs[{i}].{name}", finite=name.startswith("test_") or name == "epoch")
    for i, row in enumerate(steps):
        if not (isinstance(row, list) and len(row) == 4):
            raise FieldError(f"steps[{i}] should be [step, elbo, recon, kl]")
        for v in row:
            _number(v, f"steps[{i}]", finite=False)
