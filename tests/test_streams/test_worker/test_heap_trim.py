"""Freed heap pages go back to the system: the worker's RSS follows what it holds, not its peak."""

from __future__ import annotations

import asyncio
import threading

import pytest

from streams.worker.heap_trim import malloc_trim, trim_forever

PAGE = 4096


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def test_trimming_returns_the_pages_of_freed_blocks_below_a_live_one() -> None:
    trim = malloc_trim()
    assert trim is not None  # the project's machines run glibc
    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # below the mmap threshold: from the heap
    pinned = bytearray(64 * 1024)  # above them: the heap's top cannot shrink by itself
    del blocks
    held = rss()
    trim()
    assert held - rss() > 100 << 20  # of the ~190 MiB freed
    assert len(pinned) == 64 * 1024


def test_the_task_trims_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    thrice = threading.Event()

    def trim() -> int:
        calls.append(1)
        if len(calls) == 3:
            thrice.set()
        return 1

    monkeypatch.setattr("streams.worker.heap_trim.malloc_trim", lambda: trim)

    async def run() -> None:
        task = asyncio.ensure_future(trim_forever(0.01))
        assert await asyncio.to_thread(thrice.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(run(), 10))
    assert len(calls) >= 3
