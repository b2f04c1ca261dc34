"""Waiting on a measured system without disturbing it: progress polls, settling values, paced slices."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from bench.broker import Message, publish
from bench.cli import BenchError
from bench.stats import crossing_time


@dataclass(frozen=True)
class Reached:
    """Where a wait ended: the last count seen, when the target was crossed (or the wait gave up)."""

    count: int
    at: float  # time.perf_counter()
    reached: bool


def wait_progress(console: Console, label: str, target: int, probe: Callable[[], int], *, alive: Callable[[], bool],
                  timeout: float, start: int = 0, interval: float = 0.2,
                  last_words: Callable[[], str] = str) -> Reached:  # fmt: skip
    """Poll ``probe`` until it reaches ``target``; the crossing instant is interpolated between polls,
    so a coarse ``interval`` (a scrape costs the worker CPU) still times the end precisely."""
    began = time.perf_counter()
    prev_t, prev_n = began, start
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=max(1, target - start))
        while True:
            count = probe()
            now = time.perf_counter()
            bar.update(task, completed=min(max(0, count - start), target - start))
            if count >= target:
                return Reached(count, crossing_time(prev_t, prev_n, now, count, target), True)
            if not alive():
                done = f"{count - start:,} of {target - start:,} events"
                raise BenchError(f"{label}: the process exited after {done}: {last_words()}")
            if now - began > timeout:
                return Reached(count, now, False)
            prev_t, prev_n = now, count
            time.sleep(interval)


def settle(probe: Callable[[], float | int | None], quiet_s: float, limit_s: float,
           tolerance: float = 0.01) -> int | None:  # fmt: skip
    """The value of ``probe`` once it stayed within ``tolerance`` (relative) for ``quiet_s``, or at ``limit_s``."""
    began = time.perf_counter()
    value = probe()
    stable_since, reference = began, value
    while time.perf_counter() - began < limit_s:
        time.sleep(0.5)
        value = probe()
        if value is None or reference is None or abs(value - reference) > tolerance * max(abs(reference), 1):
            stable_since, reference = time.perf_counter(), value
        elif time.perf_counter() - stable_since >= quiet_s:
            break
    return None if value is None else int(value)


@dataclass(frozen=True)
class Paced:
    """A fresh slice of the event file, sent at ``rate`` per second with CreateTime = send time."""

    bootstrap: str
    messages: Sequence[Message]
    rate: float

    @property
    def count(self) -> int:
        return len(self.messages)

    def send(self) -> float:
        """Send every message (acknowledged); returns ``time.perf_counter()`` at the end."""
        asyncio.run(publish(self.bootstrap, self.messages, total=len(self.messages), rate=self.rate))
        return time.perf_counter()
