"""Text from visitors, links and files, made literal for Streamlit's markdown.

Streamlit renders the text of st.error, st.warning, st.caption, … as markdown: a run name, an upload's
file name or a value quoted back from a link could otherwise make bold text, links, images, LaTeX or
coloured text inside VAE Lab's own message boxes. Every such piece goes through `md` first. Only the
characters that open a construct are escaped (brackets, backticks, emphasis, $, ~, a bare URL's ://,
an underscore at a word's edge), so ordinary messages read, and compare, as they are.
"""
from __future__ import annotations

import re

_OPENERS = re.compile(r"([\\`*\[\]~$])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md(text) -> str:
    """`text` as markdown that shows exactly its characters, on one line."""
    out = _OPENERS.sub(lambda m: "\\" + m.group(0), str(text))
    return out.replace("://", r":\/\/").replace("\r", " ").replace("\n", " ")
