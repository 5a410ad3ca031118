"""CPU time used by a process (all its threads), read from /proc, so a report can say which of the
three busy processes (server, deployment, load generator) used the 2 cores during a case.
Returns None where /proc is not available (not Linux)."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of one process, or None if it is gone or unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = stat.rsplit(")", 1)[1].split()
    ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])  # fields 4, 14, 15
    return ppid, (utime + stime) / _TICKS


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its live descendants (hypercorn runs its worker in
    a child process), or None if ``pid`` cannot be read."""
    own = _stat(pid)
    if own is None:
        return None
    children: dict[int, list[tuple[int, float]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _stat(int(entry.name))) is not None:
            children.setdefault(info[0], []).append((int(entry.name), info[1]))
    total, todo = own[1], [pid]
    while todo:
        for child, seconds in children.get(todo.pop(), []):
            total += seconds
            todo.append(child)
    return total
