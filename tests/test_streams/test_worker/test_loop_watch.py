"""The event-loop watch: a blocked loop shows as a stall, a full collection as a GC pause, and the
collector hook goes away with the task."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import CollectorRegistry

from streams.worker.loop_watch import LoopWatch


def count(registry: CollectorRegistry, name: str, le: str, **labels: str) -> float:
    return registry.get_sample_value(f"{name}_bucket", {**labels, "le": le}) or 0.0


async def until(check: Callable[[], bool]) -> None:
    """Poll ``check`` for up to 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not observed within 5 s")


def hold_the_loop(seconds: float) -> None:
    """Work that never yields, as an uninterruptible piece of KPI computation would."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def slow(registry: CollectorRegistry) -> float:
    """Stalls longer than 250 ms observed so far."""
    name = "retention_event_loop_stall_seconds"
    return count(registry, name, "+Inf") - count(registry, name, "0.25")


@contextlib.asynccontextmanager
async def running(watch: LoopWatch) -> AsyncIterator[None]:
    """The watch as a task around the block, started (hooked into the collector) before it and cancelled
    after it even when an assertion fails, so no hook outlives the test."""
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_blocked_loop_is_observed_as_a_stall_of_about_its_length() -> None:
    registry = CollectorRegistry()
    watch = LoopWatch.create(registry)
    stall = "retention_event_loop_stall_seconds"

    async def main() -> None:
        async with running(watch):
            await until(lambda: count(registry, stall, "+Inf") >= 2)  # ticking
            before = slow(registry)
            hold_the_loop(0.4)
            await until(lambda: slow(registry) > before)
            assert count(registry, stall, "2.0") == count(registry, stall, "+Inf")  # about its length, not more

    asyncio.run(main())


def test_full_collections_are_timed_while_the_watch_runs_and_only_then() -> None:
    registry = CollectorRegistry()
    watch = LoopWatch.create(registry)
    pauses = "retention_gc_pause_seconds"

    async def main() -> None:
        async with running(watch):
            gc.collect(2)
            gc.collect(1)
            assert count(registry, pauses, "+Inf", generation="2") >= 1
            assert count(registry, pauses, "+Inf", generation="1") >= 1
            assert count(registry, pauses, "+Inf", generation="0") == 0  # not timed: too frequent to be worth it

    asyncio.run(main())
    before = count(registry, pauses, "+Inf", generation="2")
    gc.collect(2)
    assert count(registry, pauses, "+Inf", generation="2") == before
    assert not [cb for cb in gc.callbacks if getattr(cb, "__self__", None) is watch]


def test_a_held_loop_is_logged_with_where_it_was_held(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    watch = LoopWatch.create(registry)

    async def main() -> None:
        async with running(watch):
            await until(lambda: count(registry, "retention_event_loop_stall_seconds", "+Inf") >= 1)  # watching
            hold_the_loop(0.6)
            await until(lambda: any("event loop held" in r.message for r in caplog.records))

    with caplog.at_level(logging.WARNING, logger="streams.worker.loop_watch"):
        asyncio.run(main())
    (record,) = [r for r in caplog.records if "event loop held" in r.message]
    assert "test_loop_watch.py" in record.message
    assert "hold_the_loop" in record.message
    held = float(record.message.split("held for ")[1].split(" s")[0])
    assert 0.4 <= held <= 1.5


def test_a_loop_that_keeps_ticking_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    watch = LoopWatch.create(CollectorRegistry())

    async def main() -> None:
        async with running(watch):
            for _ in range(10):
                hold_the_loop(0.05)  # short pieces, each under the threshold
                await asyncio.sleep(0.01)

    with caplog.at_level(logging.WARNING, logger="streams.worker.loop_watch"):
        asyncio.run(main())
    assert not [r for r in caplog.records if "event loop held" in r.message]
