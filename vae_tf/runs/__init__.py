"""Runs on disk: one directory per run under `checkpoints/`.

    checkpoints/NAME/config.json     the Config (with its version)
    checkpoints/NAME/weights.npz     the model's weights, by name
    checkpoints/NAME/optimizer.npz   Adam's state, to resume (optional)
    checkpoints/NAME/history.json    per-epoch metrics and the per-step curve
    checkpoints/NAME/meta.json       versions, data set, times, epochs done
    checkpoints/NAME/owner.json      who trained it in the app (optional)

Each file is written aside and renamed into place, weights first and meta
last, so a crash leaves the previous epoch's files whole: a directory holding a
meta.json is a whole run. This package is the format's one owner: no file outside it spells these names.
"""
from .files import (
    FORMAT, FORMAT_VERSION, DEFAULT_ROOT, RUN_NAME_RE, CONFIG_FILE, META_FILE, HISTORY_FILE, WEIGHTS_FILE,
    OPTIMIZER_FILE, OWNER_FILE, RUN_FILES, TMP_SUFFIX, STEPS_KEY, REQUIRED_WEIGHTS, BAD_NAME, CheckpointError, Run,
    RunRef, check_run_name, run_dir, is_run, run_names, run_stamp, read_json, read_npz, read_config, read_meta,
    read_history, history_bytes, read_summary, load_run, load_optimizer_state,
)
from .writes import atomic_write_bytes, library_versions, mark_diverged, mark_interrupted, remove_unsaved, save_run
from .health import run_problem
from .owners import folder_bytes, owned_bytes, owner_of, set_owner
from .table import list_runs

__all__ = [
    "FORMAT", "FORMAT_VERSION", "DEFAULT_ROOT", "RUN_NAME_RE", "CONFIG_FILE", "META_FILE", "HISTORY_FILE",
    "WEIGHTS_FILE", "OPTIMIZER_FILE", "OWNER_FILE", "RUN_FILES", "TMP_SUFFIX", "STEPS_KEY", "REQUIRED_WEIGHTS",
    "BAD_NAME", "CheckpointError", "Run", "RunRef", "check_run_name", "run_dir", "is_run", "run_names", "run_stamp",
    "atomic_write_bytes", "save_run", "mark_diverged", "mark_interrupted", "library_versions", "read_json",
    "read_npz", "read_config", "read_meta", "read_history", "history_bytes", "read_summary", "load_run",
    "load_optimizer_state", "remove_unsaved", "run_problem", "owner_of", "set_owner", "folder_bytes", "owned_bytes",
    "list_runs",
]
