"""Runs on disk: one directory per run under `checkpoints/`.

    checkpoints/NAME/config.json     the Config (with its version)
    checkpoints/NAME/weights.npz     the model's weights, by name
    checkpoints/NAME/optimizer.npz   Adam's state, to resume (optional)
    checkpoints/NAME/history.json    per-epoch metrics and the per-step curve
    checkpoints/NAME/meta.json       versions, data set, times, epochs done

Each file is written aside and renamed into place, weights first and meta
last, so a crash leaves the previous epoch's files whole.
"""
from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Config, ConfigError

FORMAT = "vae-lab-run"
FORMAT_VERSION = 1
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CheckpointError(ValueError):
    """A run that cannot be read or written; the message names the file."""


@dataclass
class Run:
    name: str
    path: Path
    config: Config
    model: object  # VAE
    history: dict
    meta: dict = field(default_factory=dict)

    @property
    def epochs(self) -> list[dict]:
        return self.history.get("epochs", [])

    @property
    def final(self) -> dict:
        return self.epochs[-1] if self.epochs else {}


def check_run_name(name: str) -> str:
    """A run name is letters, digits, '.', '_' and '-', up to 64, never '..': it cannot leave checkpoints/."""
    # fullmatch, not match: '$' also matches before a trailing newline, which let "name\n" through.
    if not isinstance(name, str) or not RUN_NAME_RE.fullmatch(name) or ".." in name:
        shown = repr(name)[:80]
        raise CheckpointError(
            f"run name {shown} is not allowed: use 1–64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and no '..'")
    return name


def run_dir(name: str, root: Path | str = DEFAULT_ROOT) -> Path:
    root = Path(root).resolve()
    path = (root / check_run_name(name)).resolve()
    if path.parent != root:  # belt and braces: the name check already forbids this
        raise CheckpointError(f"run name {name!r} points outside {root}")
    return path


# -- writing ----------------------------------------------------------------------
def atomic_write_bytes(path: Path, data: bytes):
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide shipped runs from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def save_run(path: Path, model, config: Config, history: dict, meta: dict, optimizer=None):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights = model.named_weights()
    weights["__steps_done__"] = np.asarray(meta.get("steps_done", 0), np.int64)
    atomic_write_bytes(path / "weights.npz", _npz_bytes(weights))
    if optimizer is not None and optimizer.built:
        opt = {f"{i:04d}:{v.path}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
        atomic_write_bytes(path / "optimizer.npz", _npz_bytes(opt))
    config_path = path / "config.json"
    config_text = config.to_json()
    if not config_path.exists() or config_path.read_text() != config_text:
        atomic_write_bytes(config_path, config_text.encode())
    atomic_write_bytes(path / "history.json", json.dumps(history).encode())
    full_meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "versions": library_versions(), **meta}
    atomic_write_bytes(path / "meta.json", json.dumps(full_meta, indent=2).encode())


def library_versions() -> dict:
    import keras
    import tensorflow as tf
    import tensorflow_probability as tfp

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "keras": keras.__version__, "numpy": np.__version__}


# -- reading ----------------------------------------------------------------------
def read_json(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON (truncated or damaged?): {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} should hold a JSON object")
    return data


def read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable weights file (truncated or foreign?): {e}") from None


def read_config(path: Path) -> Config:
    path = Path(path)
    try:
        return Config.from_dict(read_json(path / "config.json"))
    except ConfigError as e:
        raise CheckpointError(f"{path / 'config.json'}: {e}") from None
    except TypeError as e:
        raise CheckpointError(f"{path / 'config.json'} does not describe a VAE Lab config: {e}") from None


def read_meta(path: Path) -> dict:
    meta = read_json(Path(path) / "meta.json")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{Path(path) / 'meta.json'} is not a VAE Lab run (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{Path(path) / 'meta.json'}: run format version {meta.get('format_version')} "
                              f"is not supported (this VAE Lab reads version {FORMAT_VERSION})")
    return meta


def read_history(path: Path) -> dict:
    """history.json, checked for the shape the pages rely on: epochs a list of dicts, steps a list."""
    file = Path(path) / "history.json"
    history = read_json(file)
    epochs, steps = history.get("epochs", []), history.get("steps", [])
    if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs) or not isinstance(steps, list):
        raise CheckpointError(f"{file} should hold {{'epochs': [one object per epoch], 'steps': [...]}}")
    return history


def load_run(path: Path | str, name: str | None = None) -> Run:
    """Rebuild the model from the run's own config (latent size included), then load its weights."""
    from .model import VAE

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no run at {path}")
    meta = read_meta(path)
    config = read_config(path)
    history = read_history(path)
    num_pixels = meta.get("num_pixels")
    if not isinstance(num_pixels, int) or isinstance(num_pixels, bool) or num_pixels <= 0:
        raise CheckpointError(f"{path / 'meta.json'} has no valid num_pixels")
    weights = read_npz(path / "weights.npz")
    steps = int(weights.pop("__steps_done__", meta.get("steps_done", 0)))
    model = VAE(config, num_pixels)
    try:
        model.assign_weights(weights, source=str(path / "weights.npz"))
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    meta["steps_done"] = steps
    return Run(name or path.name, path, config, model, history, meta)


def load_optimizer_state(path: Path, optimizer, variables):
    """Restore Adam's moments and step count saved with a run, if the file is there."""
    file = Path(path) / "optimizer.npz"
    if not file.exists():
        return False
    arrays = read_npz(file)
    optimizer.build(variables)
    values = [arrays[k] for k in sorted(arrays)]
    if len(values) != len(optimizer.variables):
        raise CheckpointError(f"{file} holds {len(values)} arrays; the optimizer has {len(optimizer.variables)}")
    for v, a in zip(optimizer.variables, values):
        if tuple(v.shape) != tuple(a.shape):
            raise CheckpointError(f"{file}: an array of shape {a.shape} does not fit {v.path} {tuple(v.shape)}")
        v.assign(a)
    return True


def list_runs(root: Path | str = DEFAULT_ROOT) -> pd.DataFrame:
    """One row per readable run: name, config fields, epochs, final metrics; unreadable runs get an error."""
    rows = []
    root = Path(root)
    for path in sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        row = {"name": path.name}
        try:
            meta = read_meta(path)
            config = read_config(path)
            history = read_history(path)
            final = (history.get("epochs") or [{}])[-1]
            row.update(config.to_dict())
            row["hidden"] = ",".join(map(str, config.hidden))
            row.update({"epochs_done": meta.get("epochs_done"), "status": meta.get("status", ""),
                        "test_elbo": final.get("test_elbo"), "train_elbo": final.get("train_elbo"),
                        "log_px": (meta.get("evaluation") or {}).get("log_px"),
                        "updated": meta.get("updated"), "error": ""})
        except CheckpointError as e:
            row["error"] = str(e)
        rows.append(row)
    columns = ["name", "status", "dataset", "latent_dim", "hidden", "decoder", "likelihood", "sigma", "objective",
               "epochs", "epochs_done", "batch_size", "learning_rate", "beta", "mc_samples", "seed",
               "test_elbo", "log_px", "train_elbo", "updated", "error"]
    df = pd.DataFrame(rows)
    for c in columns:
        if c not in df:
            df[c] = None
    return df[columns + [c for c in df.columns if c not in columns]]
