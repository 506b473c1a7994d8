"""Whether a run on disk is whole, read without TensorFlow: cheap enough for every run in a list."""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from .files import (BAD_NAME, REQUIRED_WEIGHTS, WEIGHTS_FILE, CheckpointError, RunRef, read_config, read_history,
                    read_meta, run_dir)


def run_problem(run: Path | str | RunRef) -> str | None:
    """Why the run cannot be loaded, read from its files without TensorFlow (cheap enough for every run in
    a list), or None if it looks whole. Name, JSON files and the weights file's directory and checksums
    are checked; weights that pass all that but do not fit the model are caught by load_run."""
    name, root = (run.name, run.root) if isinstance(run, RunRef) else (Path(run).name, Path(run).parent)
    try:
        path = run_dir(name, root)
    except CheckpointError:
        return BAD_NAME
    try:
        read_meta(path)
        read_config(path)
        read_history(path)
    except CheckpointError as e:
        return str(e).replace(f"{path.name}/", "", 1)  # the folder is the run: its files by name
    return _weights_problem(path / WEIGHTS_FILE)


def _weights_problem(file: Path) -> str | None:
    if not file.is_file():
        return f"{file.name} is missing"
    try:
        with zipfile.ZipFile(file) as z:
            damaged = z.testzip()  # reads every member: a CRC that does not match names it
            members = set(z.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f"{file.name} is not a readable weights file (truncated or foreign?): {e}"
    except zlib.error as e:  # a damaged compressed stream fails before its CRC is checked
        return f"{file.name} is damaged ({e})"
    if damaged:
        return f"{file.name} is damaged ({damaged} does not match its checksum)"
    if not set(REQUIRED_WEIGHTS) <= members:
        return f"{file.name} is not a VAE Lab weights file (foreign?)"
    return None
