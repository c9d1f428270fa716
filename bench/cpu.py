"""Who used the CPU during a step: server, PostgreSQL, Redis, the harness.

On a 2-core machine everything under test shares the same two cores, so a
latency figure means little without knowing whether the machine was full
and who filled it. Read from /proc (Linux only): user + system time of the
processes of each group, sampled before and after a step. Backends that
exit during a step take their time with them; the servers keep their pool
connections open, so that loss is small.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent pid, cpu seconds) of a live process."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name is in parentheses and may itself contain spaces
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _exe(pid: int) -> str:
    try:
        return os.readlink(PROC / str(pid) / "exe")
    except OSError:
        return ""


def sample(server_pid: int | None) -> dict[str, float]:
    """CPU seconds so far per group, plus the wall clock under "wall"."""
    out = {"server": 0.0, "postgresql": 0.0, "redis": 0.0, "harness": 0.0}
    stats: dict[int, tuple[str, int, float]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            s = _stat(int(entry.name))
            if s is not None:
                stats[int(entry.name)] = s
    me = os.getpid()
    for pid, (name, ppid, secs) in stats.items():
        if pid == me:
            out["harness"] += secs
        elif server_pid is not None and (pid == server_pid or ppid == server_pid):
            out["server"] += secs
        elif name == "redis-server":
            out["redis"] += secs
        elif name == "postgres" and _exe(pid).startswith("/usr/lib/postgresql/"):
            # the machine's PostgreSQL only, not an embedded one used by tests
            out["postgresql"] += secs
    out["wall"] = time.monotonic()
    return out


def cores_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Average cores each group kept busy between two samples."""
    wall = after["wall"] - before["wall"]
    if wall <= 0:
        return {}
    return {k: round((after[k] - before[k]) / wall, 2) for k in after if k != "wall"}
