"""The status file a measured child process (ceiling, the peers) shares with the orchestrator.

The child rewrites one small JSON object atomically (write, then rename), so the orchestrator never
reads half a file, and reads its own /proc entries so the numbers exist even after it has exited.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class StatusFile:
    """Atomic JSON status for one child; ``update`` merges fields, ``write`` replaces the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fields: dict[str, Any] = {}
        self._written = 0.0

    def update(self, *, force: bool = True, **values: Any) -> None:
        self.fields.update(values)
        now = time.monotonic()
        # Unforced updates come from the per-event path: at most a few writes per second.
        if force or now - self._written >= 0.25:
            self._written = now
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.fields))
            os.replace(tmp, self.path)


def read_status(path: str | Path) -> dict[str, Any]:
    """The child's last status, or ``{}`` before its first write."""
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data


def proc_kib(field: str, pid: int | str = "self") -> int | None:
    """A ``/proc/<pid>/status`` field in KiB (``VmRSS``, ``VmHWM``); None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def tree(pid: int | str) -> list[int | str]:
    """``pid`` and its live descendants: a worker is its process and its route process."""
    out: list[int | str] = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [p for child in task.read_text().split() for p in tree(int(child))]
        except OSError:
            continue
    return out


def rss_bytes(pid: int | str = "self", field: str = "VmRSS") -> int | None:
    """Resident (``VmRSS``) or peak (``VmHWM``) memory of ``pid`` and its descendants (the peaks of
    several processes add up to a bound, not the peak of the sum); None once ``pid`` is gone."""
    kib = proc_kib(field, pid)
    if kib is None:
        return None
    return 1024 * (kib + sum(proc_kib(field, p) or 0 for p in tree(pid)[1:]))


def cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU of a process (all threads) and its live descendants from ``/proc/<pid>/stat``;
    None once it is gone."""
    own = _cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(_cpu_seconds(p) or 0.0 for p in tree(pid)[1:])


def _cpu_seconds(pid: int | str) -> float | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return _stat(text)[1]


def _stat(text: str) -> tuple[str, float]:
    """(command name, user + system CPU seconds) of a ``/proc/…/stat`` line."""
    # The command name (field 2) may contain spaces; the fields after its closing parenthesis do not.
    head, tail = text.rsplit(")", 1)
    after = tail.split()
    utime, stime = int(after[11]), int(after[12])
    return head.split("(", 1)[1], (utime + stime) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the live threads of ``pid`` and its descendants by OS thread name (threads of one
    name add up); the main thread of ``pid`` itself is ``main``."""
    out: dict[str, float] = {}
    for process in tree(pid):
        for stat in Path(f"/proc/{process}/task").glob("*/stat"):
            try:
                name, seconds = _stat(stat.read_text())
            except OSError:  # the thread ended meanwhile
                continue
            name = "main" if stat.parent.name == str(pid) else name
            out[name] = out.get(name, 0.0) + seconds
    return out
