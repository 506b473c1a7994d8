"""A run as a .zip: packed for download, unpacked from an upload with the checks a run on disk gets.

An uploaded archive is untrusted. It is read from its central directory before anything is
decompressed: only the run's own file names (runs.RUN_FILES), flat or inside one folder, no links,
no paths, bounded sizes; then it is unpacked into a hidden folder of the checkpoints root, checked
as a run on disk is (runs.run_problem), and only then renamed into place under a name of the
caller's choosing. Its data set must be one this server has built in: an uploaded run cannot point
the app at a file.
"""
from __future__ import annotations

import io
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from . import runs
from .config import DATASETS

MAX_ARCHIVE_BYTES = 64 * 2**20  # as uploaded
MAX_UNPACKED_BYTES = 256 * 2**20  # all members together, as their headers declare them


class ArchiveError(ValueError):
    """An archive that is not a VAE Lab run; the message says why."""


def pack(path: Path | str) -> bytes:
    """The run's files as a zip, inside a folder named as the run (the owner file stays on the server)."""
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:  # float32 weights barely compress
        for name in runs.RUN_FILES:
            if name != runs.OWNER_FILE and (path / name).is_file():
                z.write(path / name, f"{path.name}/{name}")
    return buf.getvalue()


def _members(z: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """{run file name: its entry}, refusing anything but the run's own files."""
    infos = [i for i in z.infolist() if not i.is_dir()]
    folders = {i.filename.rsplit("/", 1)[0] for i in infos if "/" in i.filename}
    if len(folders) > 1 or any(i.filename.count("/") > 1 for i in infos):
        raise ArchiveError("it holds more than one folder; a run archive holds one run's files")
    out = {}
    for i in infos:
        name = i.filename.rsplit("/", 1)[-1]
        if name not in runs.RUN_FILES or name == runs.OWNER_FILE or name in out:
            raise ArchiveError(f"it holds {i.filename!r}, which is not a file of a run")
        if stat.S_ISLNK(i.external_attr >> 16):
            raise ArchiveError(f"{i.filename!r} is a link")
        out[name] = i
    missing = [n for n in (runs.CONFIG_FILE, runs.META_FILE, runs.HISTORY_FILE, runs.WEIGHTS_FILE) if n not in out]
    if missing:
        raise ArchiveError(f"it has no {', '.join(missing)}")
    if sum(i.file_size for i in out.values()) > MAX_UNPACKED_BYTES:
        raise ArchiveError(f"it unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MB")
    return out


def unpacked_bytes(data: bytes) -> int:
    """What the archive's run files would occupy unpacked, from its directory (zipfile never yields more than a
    member's declared size). Raises ArchiveError for an archive unpack() would refuse by its directory."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveError(f"it is larger than {MAX_ARCHIVE_BYTES // 2**20} MB")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return sum(i.file_size for i in _members(z).values())
    except zipfile.BadZipFile:
        raise ArchiveError("it is not a zip file") from None


def unpack(data: bytes, root: Path | str, name: str) -> Path:
    """Check the archive and make it run `name` under root; returns its folder. Raises ArchiveError."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveError(f"it is larger than {MAX_ARCHIVE_BYTES // 2**20} MB")
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ArchiveError("it is not a zip file") from None
    target = runs.run_dir(name, root)  # a safe name, inside root
    if target.exists():
        raise ArchiveError(f"a run named {name!r} already exists")
    with z:
        members = _members(z)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".upload-"))  # hidden: not listed as a run meanwhile
        try:
            run = tmp / name
            run.mkdir()
            for file, info in members.items():
                with z.open(info) as src, open(run / file, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            _check(run)
            run.rename(target)
        except zipfile.BadZipFile as e:
            raise ArchiveError(f"it is damaged ({e})") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check(path: Path):
    problem = runs.run_problem(path)
    if problem:
        raise ArchiveError(problem)
    dataset = runs.read_config(path).dataset
    if dataset not in DATASETS:
        raise ArchiveError(f"its data set is a file ({Path(dataset).name}); only runs of the built-in data sets "
                           f"({', '.join(DATASETS)}) can be uploaded")


def delete(path: Path | str, root: Path | str):
    """Remove a run's folder: only a real folder directly inside root that holds a run."""
    path, root = Path(path), Path(root).resolve()
    if path.is_symlink() or path.resolve().parent != root or not runs.is_run(path):
        raise ValueError(f"{path.name!r} is not a run of this server")
    shutil.rmtree(path)
