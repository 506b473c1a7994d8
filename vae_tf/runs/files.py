"""A run's files: their names, reading them (checked), and loading a run (vae_tf.runs.writes writes them)."""
from __future__ import annotations

import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config, ConfigError
from . import fields as run_fields

FORMAT = "vae-lab-run"
FORMAT_VERSION = 1
DEFAULT_ROOT = Path(__file__).resolve().parent.parent.parent / "checkpoints"
RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CONFIG_FILE, META_FILE, HISTORY_FILE = "config.json", "meta.json", "history.json"
WEIGHTS_FILE, OPTIMIZER_FILE = "weights.npz", "optimizer.npz"
OWNER_FILE = "owner.json"  # who trained the run in the app (optional: shipped and CLI runs have none)
RUN_FILES = (CONFIG_FILE, META_FILE, HISTORY_FILE, WEIGHTS_FILE, OPTIMIZER_FILE, OWNER_FILE)
TMP_SUFFIX = ".tmp"
STEPS_KEY = "__steps_done__"  # the step count, saved with the weights so the two never disagree
# Members every VAE Lab weights file holds, whatever the config (model.py names the output layers so).
REQUIRED_WEIGHTS = ("encoder/enc_out/kernel.npy", "decoder/dec_out/kernel.npy", f"{STEPS_KEY}.npy")
BAD_NAME = "not a run name: 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit"


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


@dataclass(frozen=True)
class RunRef:
    """A run's identity for cache keys: its place and the stamp of its files, so a cache keyed on it
    loads a run again once it is rewritten on disk. Frozen, hence hashable."""
    root: str
    name: str
    stamp: int

    @property
    def path(self) -> Path:
        return run_dir(self.name, self.root)

    @classmethod
    def of(cls, name: str, root: Path | str = DEFAULT_ROOT) -> RunRef:
        """The run as it is on disk now (stamp 0 if it has no meta.json)."""
        return cls(str(Path(root).resolve()), name, run_stamp(name, root))


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


def _path(run: Path | str | RunRef) -> Path:
    return run.path if isinstance(run, RunRef) else Path(run)


def is_run(path: Path | str) -> bool:
    """Whether the directory holds a whole run (meta.json is written last)."""
    return (Path(path) / META_FILE).is_file()


def run_names(root: Path | str = DEFAULT_ROOT) -> list[str]:
    """The runs under root, sorted: directories holding a meta.json, hidden ones left out."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()  # a link is not followed out of root
                  if p.is_dir() and not p.is_symlink() and not p.name.startswith(".") and is_run(p))


def run_stamp(name: str, root: Path | str = DEFAULT_ROOT) -> int:
    """meta.json's mtime in ns: it changes whenever the run's files are rewritten (meta.json last); 0 if absent."""
    try:
        return (Path(root) / name / META_FILE).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


# -- reading ----------------------------------------------------------------------
def _shown(path: Path) -> str:
    """A run file as messages name it: run/file, never the server's absolute path."""
    return f"{path.parent.name}/{path.name}"


def read_json(path: Path) -> dict:
    path = Path(path)
    if path.is_symlink():
        raise CheckpointError(f"{_shown(path)} is a link; a run's files must be its own")
    if not path.exists():
        raise CheckpointError(f"{_shown(path)} is missing")
    if path.stat().st_size > run_fields.MAX_JSON_BYTES:
        raise CheckpointError(f"{_shown(path)} is larger than {run_fields.MAX_JSON_BYTES // 2**20} MB")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{_shown(path)} is not valid JSON (truncated or damaged?): {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{_shown(path)} should hold a JSON object")
    return data


def read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise CheckpointError(f"{_shown(path)} is missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"{_shown(path)} is not a readable weights file (truncated or foreign?): {e}") from None


def read_config(path: Path | str | RunRef) -> Config:
    path = _path(path)
    try:
        return Config.from_dict(read_json(path / CONFIG_FILE))
    except ConfigError as e:
        raise CheckpointError(f"{_shown(path / CONFIG_FILE)}: {e}") from None
    except TypeError as e:
        raise CheckpointError(f"{_shown(path / CONFIG_FILE)} does not describe a VAE Lab config: {e}") from None


def read_meta(path: Path | str | RunRef) -> dict:
    file = _path(path) / META_FILE
    meta = read_json(file)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{_shown(file)} is not a VAE Lab run (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{_shown(file)}: run format version {meta.get('format_version')} "
                              f"is not supported (this VAE Lab reads version {FORMAT_VERSION})")
    try:
        run_fields.check_meta(meta)
    except run_fields.FieldError as e:
        raise CheckpointError(f"{_shown(file)}: {e}") from None
    return meta


def read_history(path: Path | str | RunRef) -> dict:
    """history.json, checked for the shape the pages rely on: epochs a list of dicts, steps a list."""
    file = _path(path) / HISTORY_FILE
    history = read_json(file)
    try:
        run_fields.check_history(history)
    except run_fields.FieldError as e:
        raise CheckpointError(f"{_shown(file)}: {e}") from None
    return history


def history_bytes(path: Path | str | RunRef) -> int:
    """About what a run's history takes in memory once read: 4 × history.json's bytes (each number a Python
    float of 24 bytes and a list's 8-byte pointer, against its ~10 characters of JSON); 0 if it is missing."""
    try:
        return 4 * (_path(path) / HISTORY_FILE).stat().st_size
    except OSError:
        return 0


def read_summary(run: Path | str | RunRef) -> dict:
    """Config (as a dict), meta and final epoch of a run, from its JSON files only: no model, no TensorFlow."""
    path = _path(run)
    config, meta, epochs = read_config(path), read_meta(path), read_history(path).get("epochs") or []
    return {"config": config.to_dict(), "meta": meta, "final": epochs[-1] if epochs else {}}


def load_run(path: Path | str | RunRef, name: str | None = None) -> Run:
    """Rebuild the model from the run's own config (latent size included), then load its weights."""
    from ..model import VAE

    path = _path(path)
    if not path.is_dir():
        raise CheckpointError(f"no run at {path}")
    meta = read_meta(path)
    config = read_config(path)
    history = read_history(path)
    num_pixels = meta.get("num_pixels")
    if not isinstance(num_pixels, int) or isinstance(num_pixels, bool) or num_pixels <= 0:
        raise CheckpointError(f"{_shown(path / META_FILE)} has no valid num_pixels")
    image_shape = _image_shape(meta, num_pixels, path)
    weights = read_npz(path / WEIGHTS_FILE)
    steps = int(weights.pop(STEPS_KEY, meta.get("steps_done", 0)))
    try:
        model = VAE(config, num_pixels, image_shape)  # a conv run is rebuilt for its own image shape
        model.assign_weights(weights, source=_shown(path / WEIGHTS_FILE))
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    meta["steps_done"] = steps
    return Run(name or path.name, path, config, model, history, meta)


def _image_shape(meta: dict, num_pixels: int, path: Path) -> tuple[int, int] | None:
    """meta.json's [H, W] (every run trained by VAE Lab writes it); None if absent. A conv model needs it,
    an MLP does not, so an old run without it still loads."""
    shape = meta.get("image_shape")
    if shape is None:
        return None
    if (not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(s, int) and s > 0 for s in shape)
            or shape[0] * shape[1] != num_pixels):
        raise CheckpointError(f"{_shown(path / META_FILE)}: image_shape {shape!r} is not [H, W] with "
                              f"H·W = {num_pixels}")
    return shape[0], shape[1]


def load_optimizer_state(path: Path, optimizer, variables):
    """Restore Adam's moments and step count saved with a run, if the file is there."""
    file = Path(path) / OPTIMIZER_FILE
    if not file.exists():
        return False
    arrays = read_npz(file)
    optimizer.build(variables)
    values = [arrays[k] for k in sorted(arrays)]
    if len(values) != len(optimizer.variables):
        raise CheckpointError(f"{_shown(file)} holds {len(values)} arrays; the optimizer has "
                              f"{len(optimizer.variables)}")
    for v, a in zip(optimizer.variables, values, strict=True):
        if tuple(v.shape) != tuple(a.shape):
            raise CheckpointError(f"{_shown(file)}: an array of shape {a.shape} does not fit {v.path} {tuple(v.shape)}")
        v.assign(a)
    return True
