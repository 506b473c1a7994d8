"""The disk budget: what the runs trained in the app and the uploaded data sets may occupy, per visitor and for
the whole server (VAE_LAB_VISITOR_DISK_MB, VAE_LAB_DISK_MB), and the clean-up that makes room.

A run's owner is in its owner.json (vae_tf.runs.owners); an upload's, in `<hash>.owners.json` beside it (one
file can be uploaded by several visitors: it is each one's, and goes when none is left). Shipped and
command-line runs are the server's: they count for nobody and are never removed. When a new run or upload
would take the server past its cap, the data of *abandoned* visitors goes first, the longest-idle first: a
visitor with no training running, not seen by this server and with nothing of theirs written for
VAE_LAB_ABANDONED_HOURS (default 72). An upload kept before uploads had owner files is its runs' owners' (the
runs trained on it), or, with none, NOBODY's: it counts for the server and goes first once it is that old."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import streamlit as st

from vae_tf import runs

from . import cache, server

OWNERS_SUFFIX = ".owners.json"
NOBODY = ""  # the holder of an upload that has no owners file and no run trained on it (no visitor's name is empty)
_lock = threading.Lock()  # one clean-up at a time, and none while an upload's owners are rewritten


@st.cache_resource
def _seen() -> dict[str, float]:
    """visitor → when this server last ran a page for them (shared by every session)."""
    return {}


def seen(visitor: str):
    """Called on every script run (app.py): the visitor is here now."""
    _seen()[visitor] = time.time()


def abandoned_hours() -> float:
    return float(os.environ.get("VAE_LAB_ABANDONED_HOURS", "72"))


# -- uploads' owners ------------------------------------------------------------------------------------
def upload_owners(path: Path) -> list[str]:
    try:
        owners = json.loads(path.with_suffix(OWNERS_SUFFIX).read_text()).get("owners", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [o for o in owners if isinstance(o, str)]


def add_upload_owner(path: Path, visitor: str):
    with _lock:
        owners = upload_owners(path)
        if visitor not in owners:
            _write_owners(path, owners + [visitor])


def _write_owners(path: Path, owners: list[str]):
    runs.atomic_write_bytes(path.with_suffix(OWNERS_SUFFIX), json.dumps({"owners": owners}).encode())


def _uploads() -> list[Path]:
    root = server.uploads_root()
    return sorted(p for p in root.glob("*.npz") if p.is_file() and not p.is_symlink()) if root.is_dir() else []


# -- what is used --------------------------------------------------------------------------------------
def _holdings() -> dict[str, dict]:
    """visitor → {"bytes", "runs": [paths], "uploads": [paths], "written": newest mtime of it all}."""
    out: dict[str, dict] = {}

    def entry(who):
        return out.setdefault(who, {"bytes": 0, "runs": [], "uploads": [], "written": 0.0})

    root = server.checkpoints_root()
    trained_on: dict[str, set[str]] = {}  # a data set's name → the owners of the runs trained on it
    for p in sorted(root.iterdir()) if root.is_dir() else ():
        who = runs.owner_of(p) if p.is_dir() and not p.is_symlink() and not p.name.startswith(".") else None
        if who is not None:
            with _ignore_gone():
                e = entry(who)
                e["bytes"] += runs.folder_bytes(p)
                e["runs"].append(p)
                e["written"] = max(e["written"], max((f.stat().st_mtime for f in p.iterdir()), default=0.0))
            with contextlib.suppress(OSError, ValueError):  # a damaged config trains on nothing
                trained_on.setdefault(runs.read_config(p).dataset, set()).add(who)
    for p in _uploads():
        with _ignore_gone():
            size, mtime = p.stat().st_size, p.stat().st_mtime
            # An upload kept before uploads had owner files is its runs' owners', or nobody's
            users = trained_on.get(server.upload_name(p), set()) | trained_on.get(str(p), set())
            for who in upload_owners(p) or sorted(users) or [NOBODY]:
                e = entry(who)
                e["bytes"] += size
                e["uploads"].append(p)
                e["written"] = max(e["written"], mtime)
    return out


def _ignore_gone():
    """A file removed or unreadable meanwhile counts for nothing and breaks nothing."""
    return contextlib.suppress(OSError)


def used_mb(visitor: str | None = None) -> float:
    """MB of runs and uploads that `visitor` holds, or, with None, that all visitors hold (an upload shared by
    several visitors counts once for the server)."""
    held = _holdings()
    if visitor is not None:
        return held.get(visitor, {"bytes": 0})["bytes"] / 2**20
    runs_ = sum(runs.folder_bytes(p) for e in held.values() for p in e["runs"])
    uploads = sum(p.stat().st_size for p in {p for e in held.values() for p in e["uploads"]})
    return (runs_ + uploads) / 2**20


# -- making room ------------------------------------------------------------------------------------------
def abandoned(busy: set[str], now: float | None = None) -> list[str]:
    """The visitors whose data may go, the longest idle first: not in `busy` (a training runs for them), not
    seen and nothing written for abandoned_hours()."""
    now, limit = now or time.time(), abandoned_hours() * 3600
    idle = []
    for who, e in _holdings().items():
        last = max(e["written"], _seen().get(who, 0.0))
        if who not in busy and now - last >= limit:
            idle.append((last, who))
    return [who for _, who in sorted(idle)]


def make_room(needed_mb: float, busy: set[str]) -> list[str]:
    """Remove abandoned visitors' runs and uploads, the longest idle first, until needed_mb more fits the server's
    cap (or none is left); the visitors whose data went."""
    _, everyone = server.disk_budget()
    gone = []
    with _lock:
        for who in abandoned(busy):
            if used_mb() + needed_mb <= everyone:
                break
            _remove(who)
            gone.append(who)
    return gone


def _remove(visitor: str):
    everyone = _holdings()
    held = everyone.get(visitor, {"runs": [], "uploads": []})
    for p in held["runs"]:
        shutil.rmtree(p, ignore_errors=True)
    for p in held["uploads"]:
        rest = [o for o, e in everyone.items() if o not in (visitor, NOBODY) and p in e["uploads"]]
        with _ignore_gone():
            if rest:  # another visitor uploaded the same file: it stays theirs
                _write_owners(p, rest)
            else:
                p.unlink()
                p.with_suffix(OWNERS_SUFFIX).unlink(missing_ok=True)


def busy_visitors() -> set[str]:
    """The visitors a training runs for: their data is never cleaned up."""
    return {who for who, job in cache.trainings().items() if job.running}


def problem(visitor: str, adds_mb: float, what: str, clean: bool = False) -> str | None:
    """Why `what` (adding adds_mb) does not fit the visitor's or the server's disk budget, None if it fits. The
    abandoned visitors' data counts as room; with clean (the click that adds it, not a page drawing the check)
    it is removed, as far as needed."""
    per_visitor, everyone = server.disk_budget()
    mine = used_mb(visitor)
    if mine + adds_mb > per_visitor:
        return (f"your runs and uploads take {mine:,.0f} MB on this server and {what} would add about "
                f"{adds_mb:,.0f} MB; a visitor may keep {per_visitor:,.0f} MB. Delete a run of yours first (make it "
                "the active run, then 'Delete the active run' under All runs)")
    all_ = used_mb()
    if all_ + adds_mb > everyone:
        if clean:
            make_room(adds_mb, busy_visitors())
            all_ = used_mb()
        else:
            held = _holdings()
            all_ -= sum(held[who]["bytes"] for who in abandoned(busy_visitors())) / 2**20
    if all_ + adds_mb > everyone:
        return (f"the runs and uploads of this server's visitors take {all_:,.0f} MB and {what} would add about "
                f"{adds_mb:,.0f} MB; the server keeps at most {everyone:,.0f} MB. Try again later, or a smaller one")
    return None
