"""A visitor's own data set: an uploaded .npz, checked by the library and kept under uploads/."""
from __future__ import annotations

import hashlib

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from vae_tf.data import DataError, load_npz
from vae_tf.runs import atomic_write_bytes

from . import disk, memory, server, session
from .escape import md


def release(f):
    """Drop an uploaded file from Streamlit's store of uploads at once: it would otherwise stay there, in
    memory, for as long as the tab is open (the widget then holds nothing; a refused file is never needed again,
    and an accepted one has been written to uploads/), and give the memory back. Without Streamlit's runtime
    (AppTest) there is no store."""
    ctx = get_script_run_ctx(suppress_warning=True)
    try:
        Runtime.instance().uploaded_file_mgr.remove_file(ctx.session_id, f.file_id)
    except (RuntimeError, AttributeError):
        pass
    memory.give_back()  # the request's buffers, freed but kept by the heap


def on_upload(key: str = "page.train.upload"):
    """The uploader's callback: check the file with the library, keep a valid one under uploads/,
    and make it the data set of the next run."""
    f = st.session_state.get(key)
    if f is None:
        return
    data = f.getvalue()
    release(f)
    try:
        ds = load_npz(data, name=f.name)
    except DataError as e:
        st.session_state[session.UPLOAD_RESULT] = ("error", f"Upload not accepted: {md(e)}")
        return
    folder = server.uploads_root()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.npz"  # same content, same file
    visitor = session.visitor()
    if visitor not in disk.upload_owners(path):
        full = disk.problem(visitor, len(data) / 2**20, "this upload", clean=True)
        if full:
            st.session_state[session.UPLOAD_RESULT] = ("error", f"Upload not accepted: {full}.")
            return
    if not path.exists():
        atomic_write_bytes(path, data)
    disk.add_upload_owner(path, visitor)
    name = server.upload_name(path)  # by its name in the uploads folder: no server path in a run or a link
    st.session_state.setdefault(session.UPLOADS, {})[name] = f.name
    st.session_state["hp.dataset"] = name
    h, w = ds.image_shape
    labels = f", {len(ds.class_names)} classes" if ds.class_names else ", no labels"
    st.session_state[session.UPLOAD_RESULT] = (
        "success", f"{md(f.name)}: {len(ds.x_train):,} training and {len(ds.x_test):,} test images of {h}×{w} pixels"
                   f"{labels}. It is now the data set of the next run (sidebar).")


def on_run_upload(key: str = "page.train.run_upload"):
    """The run uploader's callback: unpack a run .zip with the checks of a run on disk; it is the visitor's."""
    from vae_tf import archive, runs

    f = st.session_state.get(key)
    if f is None:
        return
    release(f)
    root = server.checkpoints_root()
    stem = f.name.rsplit(".", 1)[0]
    name = (stem if runs.RUN_NAME_RE.fullmatch(stem) and not (root / stem).exists()
            else f"upload-{hashlib.sha256(f.getvalue()).hexdigest()[:8]}")
    try:
        full = disk.problem(session.visitor(), archive.unpacked_bytes(f.getvalue()) / 2**20, "this run", clean=True)
        if full:
            raise archive.ArchiveError(full)
        path = archive.unpack(f.getvalue(), root, name)
    except (archive.ArchiveError, runs.CheckpointError) as e:
        st.session_state[session.UPLOAD_RESULT] = ("error", f"Run not accepted: {md(e)}.")
        return
    runs.set_owner(path, session.visitor())
    st.session_state[session.ACTIVE_RUN] = name
    st.session_state[session.UPLOAD_RESULT] = ("success", f"Run {name} added; it is now the active run.")
