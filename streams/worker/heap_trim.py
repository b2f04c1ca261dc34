"""Freed memory handed back to the system.

glibc keeps the pages of freed heap memory in its arenas for the next allocation. A worker's
temporaries — fact columns copied for a thread, a checkpoint's joined columns, a fetched batch — are
freed within seconds, but the pages stay, so its RSS sits at its peak instead of what it holds.
``malloc_trim`` returns the free pages; a task calls it every ``INTERVAL_S``, on a thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

from streams.pacing import beside

INTERVAL_S = 5.0  # a trim takes 3-30 ms on its thread


def malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)``; None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: int(trim(0))


async def trim_forever(interval_s: float = INTERVAL_S) -> None:
    """Trim the heap every ``interval_s`` until cancelled (returns at once without glibc)."""
    trim = malloc_trim()
    if trim is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        await beside(trim)  # a walk over the heap: not on the event loop
