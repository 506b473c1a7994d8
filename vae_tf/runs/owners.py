"""Who trained a run in the app (owner.json; shipped and CLI runs have none)."""
from __future__ import annotations

import json
from pathlib import Path

from .files import OWNER_FILE, RunRef, _path, atomic_write_bytes


def set_owner(path: Path | str, owner: str):
    atomic_write_bytes(Path(path) / OWNER_FILE, json.dumps({"owner": str(owner)}).encode())


def owner_of(path: Path | str | RunRef) -> str | None:
    """Who trained the run in the app, or None (shipped, trained by the CLI, or unreadable)."""
    try:
        owner = json.loads((_path(path) / OWNER_FILE).read_text()).get("owner")
    except (OSError, ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None
