"""One visitor's session: the keys of its state, and the messages left for its next script run.

Widget keys carry a prefix per place: "run." (the run picker), "hp." (hyperparameters of the next
run), "page.<page>." (page controls); these are bound to the URL, so they are public names. The
other keys are plain per-visitor state.
"""
from __future__ import annotations

import hashlib
import uuid

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

ACTIVE_RUN = "run.active"
TRAIN_NAME = "page.train.name"
FLASH = "flash"  # [(kind, message)] shown once at the top of the next page drawn
UPLOADS = "uploads"  # {saved path: original file name} of this session's valid uploads
UPLOAD_RESULT = "upload.result"  # (kind, message) about the last upload
SETTINGS = "settings"  # the sidebar's Settings for this script run
SHOW_OTHERS = "runs.show_others"  # the run picker lists other visitors' runs too
FOLLOW = "train.follow"  # whether the pages show the visitor's training run as it is saved
VISITOR = "visitor"  # who this session is: the same for every tab (and reload) of one browser


def visitor() -> str:
    """A name for the browser behind this session. Streamlit's XSRF cookie holds one token per browser, sent
    with every tab and reload (masked afresh on each page load), so the hash of the unmasked token names the
    visitor; without the cookie (tests), the session does."""
    if VISITOR not in st.session_state:
        cookie = st.context.cookies.get("_streamlit_xsrf") if st.context.cookies else None
        token = _unmasked(cookie) if cookie else None
        st.session_state[VISITOR] = hashlib.sha256(token.encode()).hexdigest()[:16] if token else uuid.uuid4().hex[:16]
    return st.session_state[VISITOR]


def session_id() -> str | None:
    """The browser session (one tab) of the calling script run; None off a script run (a job's thread)."""
    ctx = get_script_run_ctx(suppress_warning=True)
    return None if ctx is None else ctx.session_id


def is_active(sid: str) -> bool:
    """Whether that tab is still open. Without Streamlit's runtime (AppTest) every session counts as open."""
    try:
        return Runtime.instance().is_active_session(sid) is True
    except RuntimeError:
        return True


def _unmasked(cookie: str) -> str:
    """Tornado's version-2 XSRF cookie is "2|mask|masked token|timestamp", the token XORed with the 4-byte mask."""
    parts = cookie.split("|")
    try:
        if len(parts) == 4 and parts[0] == "2":
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked)).hex()
    except ValueError:
        pass
    return cookie


def flash(kind: str, message: str):
    """Leave a message (kind: success, info, warning, error) for the next page drawn."""
    st.session_state.setdefault(FLASH, []).append((kind, message))


def show_flash():
    """The messages left by the previous script run (a finished or stopped training, ...)."""
    for kind, message in st.session_state.pop(FLASH, []):
        getattr(st, kind)(message)
