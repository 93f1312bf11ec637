"""CPU time and memory of the processes under test, read from ``/proc`` (Linux only).

CPU time of a process is its ``utime + stime`` from ``/proc/<pid>/stat`` plus the time of
its children: the reaped ones (``cutime + cstime``) and the live descendants, so a process
that forks helpers is charged for them. Peak memory is ``VmHWM`` from
``/proc/<pid>/status`` (the high-water mark of the resident set since the process started).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The live direct children of ``pid`` (every thread's children)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, depth first."""
    found: list[int] = []
    for child in children(pid):
        found.append(child)
        found += descendants(child)
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and all its children, or 0.0
    when the process is gone."""
    total_ticks = 0
    for member in [pid, *descendants(pid)]:
        try:
            fields = _stat_fields(member)
        except (OSError, IndexError):
            continue
        # After the name: state is index 0, so utime/stime/cutime/cstime (fields 14-17) are 11-14.
        total_ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total_ticks / CLOCK_TICKS


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mib(pid: int) -> float | None:
    """``VmHWM`` of ``pid`` in MiB (None when the process is gone)."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else round(kib / 1024.0, 1)


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds of named processes (role -> seconds) at one wall-clock instant."""

    wall: float
    cpu_s: dict[str, float]

    @staticmethod
    def take(pids: Mapping[str, int]) -> CpuSnapshot:
        return CpuSnapshot(time.perf_counter(), {role: cpu_seconds(pid) for role, pid in pids.items()})

    def since(self, earlier: CpuSnapshot) -> CpuUsage:
        return CpuUsage(
            wall_s=self.wall - earlier.wall,
            cpu_s={role: round(self.cpu_s[role] - earlier.cpu_s.get(role, 0.0), 3) for role in self.cpu_s},
        )


@dataclass(frozen=True)
class CpuUsage:
    """CPU seconds each role used over ``wall_s`` seconds."""

    wall_s: float
    cpu_s: dict[str, float]

    def percent_of_core(self) -> dict[str, float]:
        if self.wall_s <= 0:
            return {role: 0.0 for role in self.cpu_s}
        return {role: round(100.0 * used / self.wall_s, 2) for role, used in self.cpu_s.items()}
