"""Writing a run's files: each staged beside its name (fsynced) and renamed into place, all of a checkpoint's
files staged before any is renamed, meta.json last; marking a run that stopped; removing a claimed folder that
saved nothing."""
from __future__ import annotations

import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ..config import Config
from .files import (CONFIG_FILE, FORMAT, FORMAT_VERSION, HISTORY_FILE, META_FILE, OPTIMIZER_FILE, OWNER_FILE,
                    STEPS_KEY, TMP_SUFFIX, WEIGHTS_FILE, RunRef, _path, is_run, read_json, read_meta)


def atomic_write_bytes(path: Path, data: bytes):
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path = Path(path)
    _commit({path: _staged(path, data)})


def _commit(staged: dict[Path, str]):
    """Rename each staged file over its path, in order; on a failure the staged files not yet renamed go."""
    try:
        for path, tmp in staged.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in staged.values():
            Path(tmp).unlink(missing_ok=True)
        raise


def _staged(path: Path, data: bytes) -> str:
    """data in a temporary file beside path (fsynced, never read as a run file), for a rename over path."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide shipped runs from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Stored, not compressed: float32 weights shrink by a few per cent under zlib, and compressing them and
    the optimizer's state took most of an epoch-end checkpoint's time (each member keeps its CRC)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_run(path: Path, model, config: Config, history: dict, meta: dict, optimizer=None):
    """Write a run: every file staged first (serialised and fsynced beside its name, the slow part), then all
    renamed into place back to back, meta.json last. A kill while staging leaves the last epoch's files
    whole and consistent (and temporary files no reader opens); only a kill within the renames, a few
    system calls, can leave newer weights beside the older meta.json (load_run then trusts the weights'
    own step count). meta's "created" is kept from the run's earlier meta.json, or set now for a new run."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights = model.named_weights()
    weights[STEPS_KEY] = np.asarray(meta.get("steps_done", 0), np.int64)
    files = {WEIGHTS_FILE: _npz_bytes(weights)}
    if optimizer is not None and optimizer.built:
        files[OPTIMIZER_FILE] = _npz_bytes({f"{i:04d}:{v.path}": np.asarray(v.numpy())
                                            for i, v in enumerate(optimizer.variables)})
    config_text = config.to_json()
    if not (path / CONFIG_FILE).exists() or (path / CONFIG_FILE).read_text() != config_text:
        files[CONFIG_FILE] = config_text.encode()
    files[HISTORY_FILE] = json.dumps(history).encode()
    created = meta.get("created") or (read_json(path / META_FILE).get("created") if is_run(path) else None)
    full_meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "versions": library_versions(), **meta, "created": created or time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    files[META_FILE] = json.dumps(full_meta, indent=2).encode()  # last: a folder with meta.json is a run
    staged = {}
    try:
        for name, data in files.items():
            staged[path / name] = _staged(path / name, data)
    except BaseException:
        for tmp in staged.values():
            Path(tmp).unlink(missing_ok=True)
        raise
    _commit(staged)


def mark_diverged(path: Path | str | RunRef, message: str) -> dict:
    """A diverged training leaves the last good epoch's files, with status "training": say it will not go on."""
    return _mark(path, status="diverged", diverged=message)


def mark_interrupted(path: Path | str | RunRef, message: str) -> dict:
    """A training killed mid-way (its process gone) leaves its last saved epoch: say so, and why."""
    return _mark(path, status="interrupted", interrupted=message)


def _mark(path: Path | str | RunRef, **fields) -> dict:
    path = _path(path)
    meta = read_meta(path)
    meta.update(fields)
    atomic_write_bytes(path / META_FILE, json.dumps(meta, indent=2).encode())
    for tmp in path.glob(f".*{TMP_SUFFIX}"):  # a write the kill cut short: never used, so removed
        tmp.unlink(missing_ok=True)
    return meta


def library_versions() -> dict:
    import keras
    import tensorflow as tf
    import tensorflow_probability as tfp

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "keras": keras.__version__, "numpy": np.__version__}


def remove_unsaved(path: Path | str):
    """A claimed folder whose training saved nothing: remove it (with its owner file), so the name is free.
    A folder holding a run, or any other file, is left alone."""
    path = Path(path)
    if is_run(path):
        return
    (path / OWNER_FILE).unlink(missing_ok=True)
    try:
        path.rmdir()
    except OSError:
        pass
