"""Where runs and uploads live, and the session-state keys shared by app.py, the sidebar and pages."""
from __future__ import annotations

import os
from pathlib import Path

from vae_tf.checkpoints import DEFAULT_ROOT

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RUN = "fashion-default"  # the shipped run every page shows before anyone trains

# Session-state keys. Widget keys carry a prefix per place: "run." (run picker), "hp." (hyperparameters
# of the next run), "page.<page>." (page controls); the rest are plain per-user state.
ACTIVE_RUN = "run.active"
TRAIN_REQUEST = "train.request"  # set by the Train button's callback: {"name", "config"}
TRAIN_IN_PROGRESS = "train.in_progress"  # name of the run this session is training right now
TRAIN_NAME = "page.train.name"
FLASH = "flash"  # [(kind, message)] shown once at the top of the next page drawn
UPLOADS = "uploads"  # {saved path: original file name} of this session's valid uploads
UPLOAD_RESULT = "upload.result"  # (kind, message) about the last upload
SETTINGS = "settings"  # the sidebar's Settings for this script run


def checkpoints_root() -> Path:
    """VAE_LAB_CHECKPOINTS, else the repository's checkpoints/ (tests point it at a temporary copy)."""
    return Path(os.environ.get("VAE_LAB_CHECKPOINTS") or DEFAULT_ROOT).resolve()


def uploads_root() -> Path:
    """VAE_LAB_UPLOADS, else uploads/ in the repository (gitignored)."""
    return Path(os.environ.get("VAE_LAB_UPLOADS") or REPO / "uploads").resolve()


def max_concurrent_trainings() -> int:
    """Trainings allowed at once across all sessions (2 shared cores here: one)."""
    return max(1, int(os.environ.get("VAE_LAB_MAX_TRAININGS", "1")))


def run_names(root: Path | None = None) -> list[str]:
    """Runs on disk: directories holding a meta.json (written last, so the run is whole)."""
    root = root or checkpoints_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / "meta.json").is_file())


def run_stamp(name: str, root: Path | None = None) -> int:
    """Changes whenever the run's files are rewritten (meta.json is written last): part of cache keys."""
    path = (root or checkpoints_root()) / name / "meta.json"
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0
