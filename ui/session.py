"""One visitor's session: the keys of its state, and the messages left for its next script run.

Widget keys carry a prefix per place: "run." (the run picker), "hp." (hyperparameters of the next
run), "page.<page>." (page controls); these are bound to the URL, so they are public names. The
other keys are plain per-visitor state.
"""
from __future__ import annotations

import streamlit as st

ACTIVE_RUN = "run.active"
TRAIN_REQUEST = "train.request"  # set by the Train button's callback: {"name", "config"}
TRAIN_IN_PROGRESS = "train.in_progress"  # name of the run this session is training right now
TRAIN_NAME = "page.train.name"
FLASH = "flash"  # [(kind, message)] shown once at the top of the next page drawn
UPLOADS = "uploads"  # {saved path: original file name} of this session's valid uploads
UPLOAD_RESULT = "upload.result"  # (kind, message) about the last upload
SETTINGS = "settings"  # the sidebar's Settings for this script run


def flash(kind: str, message: str):
    """Leave a message (kind: success, info, warning, error) for the next page drawn."""
    st.session_state.setdefault(FLASH, []).append((kind, message))


def show_flash():
    """The messages left by the previous script run (a finished or stopped training, ...)."""
    for kind, message in st.session_state.pop(FLASH, []):
        getattr(st, kind)(message)
