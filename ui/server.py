"""What one server holds for all its visitors: its folders, its shipped runs and its caps.

Each is read from an environment variable when set (the tests point the folders at temporary copies).
"""
from __future__ import annotations

import os
from pathlib import Path

from vae_tf.runs import DEFAULT_ROOT

REPO = Path(__file__).resolve().parent.parent

DEFAULT_RUN = "fashion-default"  # the shipped run every page shows before anyone trains
TWO_D_RUN = "fashion-2d"  # the shipped run with a 2-D latent
GAUSSIAN_RUN = "fashion-linear-gaussian"  # the shipped run whose log p(x) has a closed form
IWAE_PAIR = ("fashion-vae5", "fashion-iwae5")  # the same model trained on the ELBO and on L_5
SHIPPED = (DEFAULT_RUN, TWO_D_RUN, GAUSSIAN_RUN, *IWAE_PAIR, "fashion-conv")  # never rewritten by the app


def checkpoints_root() -> Path:
    """VAE_LAB_CHECKPOINTS, else the repository's checkpoints/."""
    return Path(os.environ.get("VAE_LAB_CHECKPOINTS") or DEFAULT_ROOT).resolve()


def uploads_root() -> Path:
    """VAE_LAB_UPLOADS, else uploads/ in the repository (gitignored)."""
    return Path(os.environ.get("VAE_LAB_UPLOADS") or REPO / "uploads").resolve()


UPLOAD_PREFIX = "uploads/"  # a run names its uploaded data "uploads/<sha256[:16]>.npz", never by a server path


def upload_name(path: Path) -> str:
    """The name a run and a link give an upload kept in uploads_root(): the same on every server."""
    return UPLOAD_PREFIX + path.name


def upload_path(name: str) -> Path:
    """The file of an upload named `name` ("uploads/….npz"; a run trained before names its absolute path).
    Anything that does not resolve to an .npz directly inside uploads_root() is refused (ValueError)."""
    path = uploads_root() / name[len(UPLOAD_PREFIX):] if name.startswith(UPLOAD_PREFIX) else Path(name)
    path = path.resolve()
    if path.parent != uploads_root() or path.suffix != ".npz":
        raise ValueError(f"the data set {Path(name).name!r} is not among this server's uploads")
    return path


def max_concurrent_trainings() -> int:
    """Trainings allowed at once across all sessions (VAE_LAB_MAX_TRAININGS, default one: 2 shared cores)."""
    return max(1, int(os.environ.get("VAE_LAB_MAX_TRAININGS", "1")))


def training_nice() -> int:
    """How much lower than the server's a training worker's CPU priority is (VAE_LAB_TRAINING_NICE, default 10;
    0: the same). A training takes every core it is given, for minutes; with its processes niced, the visitors'
    page runs get the cores first and the training all the rest, so it runs as fast as before on an idle server."""
    return max(0, min(19, int(os.environ.get("VAE_LAB_TRAINING_NICE", "10"))))


def background_nice() -> int:
    """How much lower than its page runs the server's background work runs (VAE_LAB_BACKGROUND_NICE, default 10;
    0: the same): its jobs' threads and TensorFlow's compute threads (ui.priority)."""
    return max(0, min(19, int(os.environ.get("VAE_LAB_BACKGROUND_NICE", "10"))))


def training_budget() -> tuple[float, float, float]:
    """(MB, minutes, GFLOP/s): the most memory and time a training may be estimated to take
    (VAE_LAB_TRAINING_MB, default 1500; VAE_LAB_TRAINING_MINUTES, default 60), and the sustained rate the
    time is estimated at (VAE_LAB_GFLOPS, default 50: a conservative figure for two cores)."""
    env = os.environ.get
    return (float(env("VAE_LAB_TRAINING_MB", "1500")), float(env("VAE_LAB_TRAINING_MINUTES", "60")),
            float(env("VAE_LAB_GFLOPS", "50")))


def disk_budget() -> tuple[float, float]:
    """(MB per visitor, MB for all visitors): what the runs trained in the app may occupy on disk
    (VAE_LAB_VISITOR_DISK_MB, default 500; VAE_LAB_DISK_MB, default 4000; shipped runs do not count)."""
    return float(os.environ.get("VAE_LAB_VISITOR_DISK_MB", "500")), float(os.environ.get("VAE_LAB_DISK_MB", "4000"))


def run_cache_mb() -> float:
    """What the server's cache of loaded runs may hold (VAE_LAB_RUN_CACHE_MB, default 256)."""
    return float(os.environ.get("VAE_LAB_RUN_CACHE_MB", "256"))


def answer_cache_mb() -> float:
    """What the server's cache of answers (encodings, grids, estimates, histories) may hold
    (VAE_LAB_ANSWER_CACHE_MB, default 256)."""
    return float(os.environ.get("VAE_LAB_ANSWER_CACHE_MB", "256"))


def data_cache_mb() -> float:
    """What the server's cache of data sets and test sets may hold (VAE_LAB_DATA_CACHE_MB, default 512)."""
    return float(os.environ.get("VAE_LAB_DATA_CACHE_MB", "512"))
