"""Who trained a run in the app (owner.json; shipped and CLI runs have none), and what a visitor's runs occupy."""
from __future__ import annotations

import json
from pathlib import Path

from .files import OWNER_FILE, RunRef, _path
from .writes import atomic_write_bytes


def set_owner(path: Path | str, owner: str):
    atomic_write_bytes(Path(path) / OWNER_FILE, json.dumps({"owner": str(owner)}).encode())


def owner_of(path: Path | str | RunRef) -> str | None:
    """Who trained the run in the app, or None (shipped, trained by the CLI, or unreadable)."""
    try:
        owner = json.loads((_path(path) / OWNER_FILE).read_text()).get("owner")
    except (OSError, ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None


def folder_bytes(path: Path | str) -> int:
    """The bytes of the regular files in a run folder (links are not followed)."""
    total = 0
    for p in Path(path).iterdir():
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def owned_bytes(root: Path | str, owner: str | None = None) -> int:
    """The bytes of the run folders under root that `owner` trained, or, with owner None, of every run folder
    that someone trained in the app (the shipped and CLI runs are the server's)."""
    total = 0
    for p in Path(root).iterdir() if Path(root).is_dir() else ():
        if p.is_dir() and not p.is_symlink() and not p.name.startswith("."):
            who = owner_of(p)
            if who is not None and (owner is None or who == owner):
                try:
                    total += folder_bytes(p)
                except OSError:  # unreadable or gone meanwhile: it counts for nothing, and breaks nothing
                    pass
    return total
