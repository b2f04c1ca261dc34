"""Sharing the worker's one event loop: long work gives the loop back every ``SLICE_S``.

Route relays, apply turns, the follower, KPI answers and at-risk scoring all run on one loop, so a
piece of work that holds it delays every other stage's events (``retention_event_loop_stall_seconds``).
Each stage cuts its work into small steps and calls :meth:`Slice.breathe` between them: a yield only
when the loop has been held for a slice, so short work pays nothing for it.
"""

from __future__ import annotations

import asyncio
import time

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
