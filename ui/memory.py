"""Giving freed memory back to the system. glibc keeps the heap pages that Python and TensorFlow free (an
upload's request buffers, a job's intermediate arrays) for reuse by the same process, so the server's
resident memory — what a container's limit counts — stays at its high-water mark. malloc_trim(0) returns
the free pages; elsewhere than glibc (macOS) it is not there and nothing happens."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc

try:
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _TRIM = _LIBC.malloc_trim
except (OSError, AttributeError):
    _TRIM = None


def give_back() -> bool:
    """Collect garbage, then return the heap's free pages to the system; whether any were returned."""
    gc.collect()
    return bool(_TRIM(0)) if _TRIM is not None else False
