"""When an event is done in a minibatch engine (Pathway): once every output has closed the event's time.

Pathway processes its input in minibatches, each with a processing time; an output says that a time
is complete through its ``on_time_end`` callback. An event is done once every output that it
updates has closed its time (or a later one). Pure: ``tests/test_bench`` checks it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class Frontier:
    """Events waiting for ``outputs`` to close their processing time; each carries its Kafka timestamp."""

    def __init__(self, outputs: Iterable[str]) -> None:
        self._closed = dict.fromkeys(outputs, -1)
        if not self._closed:
            raise ValueError("no outputs to wait for")
        self._pending: deque[tuple[int, int]] = deque()  # (processing time, Kafka timestamp ms)

    @property
    def done_until(self) -> int:
        """The latest processing time every output has closed (-1: none yet)."""
        return min(self._closed.values())

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, time: int, timestamp_ms: int) -> bool:
        """An event of processing time ``time``; True if it is done already, else it waits."""
        if time <= self.done_until:
            return True
        self._pending.append((time, timestamp_ms))
        return False

    def close(self, output: str, time: int) -> list[int]:
        """``output`` has closed ``time``: the Kafka timestamps of the events done now, oldest time first."""
        self._closed[output] = max(self._closed[output], time)
        until = self.done_until
        done: list[int] = []
        # Events arrive in order of time (an output delivers a time after the times before it).
        while self._pending and self._pending[0][0] <= until:
            done.append(self._pending.popleft()[1])
        return done
