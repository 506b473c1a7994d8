"""ui.disk: what visitors' runs and uploads occupy, and the clean-up of abandoned visitors' data, longest idle
first, when the server's cap is reached. Folders and files stand in for runs and uploads (only their owners,
sizes and times matter here); the app's refusal at Upload is in test_bad_input."""
import json
import os
import time

import pytest

from ui import disk
from vae_tf import runs

MB = 2**20
DAY = 24 * 3600


@pytest.fixture
def roots(tmp_path, monkeypatch):
    ckpt, uploads = tmp_path / "checkpoints", tmp_path / "uploads"
    ckpt.mkdir()
    uploads.mkdir()
    monkeypatch.setenv("VAE_LAB_CHECKPOINTS", str(ckpt))
    monkeypatch.setenv("VAE_LAB_UPLOADS", str(uploads))
    monkeypatch.setenv("VAE_LAB_ABANDONED_HOURS", "72")
    disk._seen().clear()
    return ckpt, uploads


def run(root, name, owner, mb, days_ago):
    path = root / name
    path.mkdir()
    (path / "weights.npz").write_bytes(b"\0" * int(mb * MB))
    (path / "meta.json").write_text("{}")
    if owner:
        runs.set_owner(path, owner)
    _age(path, days_ago)
    return path


def upload(root, name, owners, mb, days_ago):
    path = root / f"{name}.npz"
    path.write_bytes(b"\0" * int(mb * MB))
    for who in owners:
        disk.add_upload_owner(path, who)
    _age(path, days_ago)
    return path


def _age(path, days_ago):
    t = time.time() - days_ago * DAY
    for p in [path, *path.parent.glob(path.stem + "*")] + (list(path.iterdir()) if path.is_dir() else []):
        os.utime(p, (t, t))


def test_a_visitors_runs_and_uploads_count_for_them_and_a_shared_upload_once_for_the_server(roots):
    ckpt, uploads = roots
    run(ckpt, "fashion-default", None, 3, 0)  # shipped: nobody's
    run(ckpt, "a-1", "alice", 2, 0)
    upload(uploads, "shared", ["alice", "bob"], 1, 0)
    assert disk.used_mb("alice") == pytest.approx(3, abs=0.01)
    assert disk.used_mb("bob") == pytest.approx(1, abs=0.01)
    assert disk.used_mb() == pytest.approx(3, abs=0.01)
    assert json.loads((uploads / "shared.owners.json").read_text()) == {"owners": ["alice", "bob"]}


def test_room_is_made_from_the_longest_idle_abandoned_visitor_first_and_no_further(roots, monkeypatch):
    ckpt, uploads = roots
    monkeypatch.setenv("VAE_LAB_DISK_MB", "10")
    shipped = run(ckpt, "fashion-default", None, 3, 400)
    oldest = [run(ckpt, "old-1", "old", 2, 30), upload(uploads, "old-data", ["old"], 1, 30)]
    older = [run(ckpt, "older-1", "older", 3, 20)]
    recent = [run(ckpt, "recent-1", "recent", 2, 1)]  # written a day ago: not abandoned
    training = [run(ckpt, "busy-1", "busy", 1, 40)]  # a training runs for them now
    seen = [run(ckpt, "seen-1", "seen", 1, 50)]  # a page ran for them a minute ago
    shared = upload(uploads, "shared", ["old", "recent"], 1, 30)
    disk.seen("seen")
    assert disk.abandoned(busy={"busy"}) == ["old", "older"]
    assert disk.used_mb() == pytest.approx(11, abs=0.01)

    assert disk.make_room(1, busy={"busy"}) == ["old"]  # 11 − 3 = 8 MB, + 1 fits 10: older stays
    assert not any(p.exists() for p in oldest) and all(p.exists() for p in older + recent + training + seen)
    assert shipped.exists() and shared.exists() and disk.upload_owners(shared) == ["recent"]

    assert disk.make_room(5, busy={"busy"}) == ["older"]  # then only what is not abandoned is left
    assert disk.make_room(50, busy={"busy"}) == []
    assert all(p.exists() for p in recent + training + seen) and shipped.exists()


def test_over_the_cap_after_the_clean_up_is_refused_with_what_is_used(roots, monkeypatch):
    ckpt, _ = roots
    monkeypatch.setenv("VAE_LAB_DISK_MB", "5")
    monkeypatch.setenv("VAE_LAB_VISITOR_DISK_MB", "4")
    run(ckpt, "gone-1", "gone", 2, 10)
    run(ckpt, "here-1", "here", 2, 0)
    assert "your runs and uploads take 2 MB" in disk.problem("here", 2.5, "this upload")
    assert disk.problem("me", 0.9, "this run") is None and (ckpt / "gone-1").exists()  # 4 + 0.9 fits 5
    assert disk.problem("me", 2.5, "this upload") is None and (ckpt / "gone-1").exists()  # drawing: room counted
    assert disk.problem("me", 2.5, "this upload", clean=True) is None and not (ckpt / "gone-1").exists()  # made
    said = disk.problem("me", 3.5, "this upload", clean=True)  # within the visitor's 4 MB, not the server's 5
    assert "take 2 MB and this upload would add about 4 MB; the server keeps at most 5 MB" in said
    assert (ckpt / "here-1").exists()


def test_an_upload_kept_before_owner_files_is_its_runs_owners_or_else_goes_first_when_old(roots, monkeypatch):
    from vae_tf.config import Config

    ckpt, uploads = roots
    monkeypatch.setenv("VAE_LAB_DISK_MB", "10")
    legacy = upload(uploads, "legacy", [], 2, 30)  # no owners file: kept before there were any
    orphan = upload(uploads, "orphan", [], 3, 40)  # and no run trained on it either
    for name, who in (("c-1", "carol"), ("d-1", "dave")):
        run(ckpt, name, who, 1, 0)
        (ckpt / name / "config.json").write_text(Config(dataset="uploads/legacy.npz").to_json())
    assert disk.used_mb("carol") == pytest.approx(3, abs=0.01) and disk.used_mb("dave") == pytest.approx(3, abs=0.01)
    assert disk.used_mb() == pytest.approx(7, abs=0.01)  # 1 + 1 + the legacy upload once + the orphan
    assert disk.abandoned(busy=set()) == [disk.NOBODY]  # carol and dave wrote today
    assert disk.make_room(4, busy=set()) == [disk.NOBODY]
    assert not orphan.exists() and legacy.exists()

    _age(ckpt / "c-1", 20)  # carol leaves: the legacy upload stays dave's, now in an owners file
    assert disk.make_room(100, busy=set()) == ["carol"]
    assert legacy.exists() and disk.upload_owners(legacy) == ["dave"]
