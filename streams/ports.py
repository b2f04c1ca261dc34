"""What the stages need from a message log, as small protocols: Kafka in the worker, memory in tests.

The route and apply stages only send messages, read a partition's log back, and see records of a
fetch; they never touch a Kafka client. :mod:`streams.kafka.transport` implements these on
aiokafka, :mod:`streams.memory` on plain lists, so the stages' real code runs in property tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Protocol

Headers = list[tuple[str, bytes]]


class LogRecord(Protocol):
    """A message read back from a partition's log."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def offset(self) -> int: ...


class InputMessage(LogRecord, Protocol):
    """A message as a consumer hands it over (aiokafka's ``ConsumerRecord`` is one)."""

    @property
    def timestamp(self) -> int: ...  # ms since the epoch

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Source(Protocol):
    """Where a fetch came from: a topic and partition (aiokafka's ``TopicPartition`` is one)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


Batch = Mapping[Source, Sequence[InputMessage]]


class Producer(Protocol):
    """Sends messages; each returned awaitable completes once the log acknowledged the message."""

    async def send(self, topic: str, value: bytes | None, *, key: bytes | None = None,
                   partition: int | None = None, headers: Headers | None = None) -> Awaitable[object]: ...

    async def send_all(self, topic: str, partition: int, items: Sequence[tuple[bytes, bytes]]) -> int:
        """Send ``(key, value)`` messages to one partition in order; the offset after the last, once
        every one is acknowledged."""


class LogReader(Protocol):
    """Reads one partition of a log back (to restore the states kept from it)."""

    async def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        """The first offset still in the log and the offset after the last one."""

    def read(self, topic: str, partition: int, start: int, end: int) -> AsyncIterator[Sequence[LogRecord]]:
        """The records in ``[start, end)``, a batch at a time (compaction may have removed some)."""
