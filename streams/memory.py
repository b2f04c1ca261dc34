"""A message log in memory that implements the stages' ports: the route and apply stages run on it
unchanged, so the property tests drive their real code without a broker."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field

from streams.ports import Headers


class LogUnavailable(ConnectionError):
    """The log refuses sends while ``fail`` is set (a broker outage, for tests)."""


@dataclass(frozen=True)
class Message:
    """A message in a partition: what a consumer would hand over, and the headers it was sent with."""

    key: bytes | None
    value: bytes | None
    offset: int
    timestamp: int = 0  # ms since the epoch
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True)
class Partition:
    topic: str
    partition: int


class MemoryLog:
    """Topics of ``partitions`` partitions; a send without a partition goes by the crc32 of its key."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self.logs: dict[Partition, list[Message]] = {}
        self.fail = False

    def messages(self, topic: str, partition: int = 0) -> list[Message]:
        return self.logs.setdefault(Partition(topic, partition), [])

    def everything(self, topic: str) -> list[Message]:
        """Every message of ``topic``, partition by partition."""
        return [m for part, log in sorted(self.logs.items(), key=lambda item: item[0].partition)
                if part.topic == topic for m in log]

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None, *,
               headers: Headers | None = None, timestamp: int = 0) -> Message:
        log = self.messages(topic, partition)
        message = Message(key, value, log[-1].offset + 1 if log else 0, timestamp, headers or [])
        log.append(message)
        return message

    async def send(self, topic: str, value: bytes | None, *, key: bytes | None = None,
                   partition: int | None = None, headers: Headers | None = None) -> Awaitable[object]:
        if self.fail:
            raise LogUnavailable(f"sending to {topic} failed: the log is unavailable")
        if partition is None:
            partition = zlib.crc32(key or b"") % self.partitions
        acked: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        acked.set_result(self.append(topic, partition, key, value, headers=headers))
        return acked

    async def send_all(self, topic: str, partition: int, items: Sequence[tuple[bytes, bytes]]) -> int:
        for key, value in items:
            await self.send(topic, value, key=key, partition=partition)
        return self.messages(topic, partition)[-1].offset + 1 if items else 0

    async def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        log = self.messages(topic, partition)
        return (log[0].offset, log[-1].offset + 1) if log else (0, 0)

    async def read(self, topic: str, partition: int, start: int, end: int) -> AsyncIterator[Sequence[Message]]:
        records = [m for m in self.messages(topic, partition) if start <= m.offset < end]
        if records:
            yield records

    def compact(self, topic: str, partition: int) -> None:
        """Keep the newest message of each key, as log compaction eventually does (offsets keep gaps)."""
        log = self.messages(topic, partition)
        newest = {m.key: m.offset for m in log}
        log[:] = [m for m in log if newest[m.key] == m.offset]
