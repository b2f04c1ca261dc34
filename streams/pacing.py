"""Sharing the worker's CPU: long work gives the event loop back every ``SLICE_S``, and work beside the
loop runs at a slightly lower priority.

Route relays, apply turns, the follower, KPI answers and at-risk scoring all run on one loop, so a
piece of work that holds it delays every other stage's events (``retention_event_loop_stall_seconds``).
Each stage cuts its work into small steps and calls :meth:`Slice.breathe` between them: a yield only
when the loop has been held for a slice, so short work pays nothing for it.

Work that takes seconds — a cohort scan or a CLV ranking of a million customers, a checkpoint — runs
:func:`beside` the loop on threads at nice ``BACKGROUND_NICE``: the route process and a broker on the same
machine come first while numpy's sorts and searches run with the GIL released.

Only slightly lower: while such a thread runs Python it holds the GIL, and when every core is busy the
kernel may take it off the CPU right then. At nice 19 it can then wait so long for its next turn that
the loop, waiting for the GIL, stalls: 0.1-0.4 s at a time with both cores of a 2-core machine busy,
against none at nice 2 (``python -m bench.priority``; docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SLICE_S = 0.02  # the loop is given back at least this often: far under the 100 ms an operator would notice


class Slice:
    """The time since this task last gave the event loop back."""

    def __init__(self, seconds: float = SLICE_S) -> None:
        self.seconds = seconds
        self.since = time.perf_counter()

    def over(self) -> bool:
        """Whether the slice is used up: the caller should stop, or :meth:`breathe`."""
        return time.perf_counter() - self.since >= self.seconds

    async def breathe(self) -> None:
        """Let the loop run other tasks if this slice is used up."""
        if self.over():
            await asyncio.sleep(0)
            self.since = time.perf_counter()


BACKGROUND_NICE = 2  # see the module text: not lower
_background: list[ThreadPoolExecutor] = []


def name_thread(name: str) -> None:
    """Give the calling thread its name in the OS too (Linux keeps 15 characters), so ``top -H`` and the
    benchmark's CPU by thread tell the worker's threads apart; Python's own names stay in Python."""
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(name[:15])


def _background_thread() -> None:
    """A background thread: named, at a slightly lower CPU priority (Linux: a thread has its own nice)."""
    name_thread("retention-bg")
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


def background() -> ThreadPoolExecutor:
    """The threads for work beside the event loop; two, so a checkpoint never waits for a ranking."""
    if not _background:
        _background.append(ThreadPoolExecutor(2, "background", initializer=_background_thread))
    return _background[0]


async def beside(work: Callable[[], T]) -> T:
    """``work()`` on a background thread, at nice ``BACKGROUND_NICE``."""
    return await asyncio.get_running_loop().run_in_executor(background(), work)
