"""Peak resident memory of this process per stage, and of another (the app's server), from /proc."""
from __future__ import annotations

import contextlib
from pathlib import Path


class PeakMemory:
    """The process's peak resident memory during a `with` block, and its rise over the block's start:
    VmHWM is reset to the current RSS on entry (/proc/self/clear_refs, Linux)."""

    def __enter__(self):
        with contextlib.suppress(OSError):  # not Linux, or not allowed: the peak then counts from the start
            Path("/proc/self/clear_refs").write_text("5")
        self.start = _proc_status_mb("self", "VmRSS:")
        return self

    def __exit__(self, *exc):
        self.peak = _proc_status_mb("self", "VmHWM:")

    def __str__(self):
        if self.peak is None:
            return "?"
        if self.start is None:
            return f"{self.peak:.0f} MB"
        return f"{self.peak:.0f} MB (+{max(0.0, self.peak - self.start):.0f})"


def _proc_status_mb(pid, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_memory_mb(pid: int | str = "self") -> float | None:
    return _proc_status_mb(pid, "VmHWM:")
