"""The cgroups that hold a benchmark's server as Streamlit Community Cloud holds its container (a memory limit
that the server and every worker it starts inherit), and count its CPU time beside the whole machine's."""
from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup/memory")


class MemoryCap:
    """A cgroup v1 memory limit that the server and every worker it starts are held to (children inherit
    it), as Cloud holds the container, with a cpuacct group beside it that counts their CPU time; None where
    the controllers cannot be written (not root, no v1)."""

    def __init__(self, mb: int):
        self.mb, self.path = mb, CGROUP / f"vae-lab-bench-{os.getpid()}"
        self.cpu = CGROUP.parent / "cpuacct" / self.path.name

    def __enter__(self) -> MemoryCap | None:
        try:
            self.path.mkdir()
            (self.path / "memory.limit_in_bytes").write_text(str(self.mb * 2**20))
            self.cpu.mkdir()
        except OSError:
            return None
        return self

    def join(self):
        """preexec_fn of the server: it enters the cgroups before it execs."""
        for group in (self.path, self.cpu):
            (group / "cgroup.procs").write_text(str(os.getpid()))

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the server and its workers, those that have ended included."""
        return int((self.cpu / "cpuacct.usage").read_text()) / 1e9

    def _read(self, name: str) -> str:
        return (self.path / name).read_text()

    @property
    def peak_mb(self) -> float:
        return int(self._read("memory.max_usage_in_bytes")) / 2**20

    @property
    def oom_kills(self) -> int:
        fields = dict(line.split() for line in self._read("memory.oom_control").splitlines())
        return int(fields.get("oom_kill", 0))

    def kill_all(self):
        """End the server's workers too (a training's worker outlives its server by a save)."""
        for pid in self._read("cgroup.procs").split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)

    def __exit__(self, *exc):
        for group in (self.path, self.cpu):
            for _ in range(50):  # its processes take a moment to leave once killed
                with contextlib.suppress(OSError):
                    group.rmdir()
                    break
                time.sleep(0.1)


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
