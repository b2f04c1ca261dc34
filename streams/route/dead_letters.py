"""The dead-letter topic: every rejected message with its original bytes, the reason and its origin."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from streams.contract.decode import Rejection
from streams.ports import Producer
from streams.wire import Routed

Origin = tuple[str, int, int]  # topic, partition and offset of the message as published
# The message's own headers travel under this prefix, so none can be taken for ``reason`` or ``source_*``
# (and ``retention-monitor dlq redrive`` can give them back as they were).
ORIGINAL_HEADER = "source_header."


class DeadLetters:
    """Sends rejected messages to ``topic`` (headers ``reason``, ``message``, ``source_*``, the original
    headers prefixed :data:`ORIGINAL_HEADER`) and counts them."""

    def __init__(self, producer: Producer, topic: str, count: Callable[[dict[str, int]], None]) -> None:
        self.producer = producer
        self.topic = topic
        self.count = count

    async def send(self, key: bytes | None, value: bytes | None, rejection: Rejection, origin: Origin,
                   original: Sequence[tuple[str, bytes]] = ()) -> None:
        """Send one dead letter and wait until the log acknowledged it (counting is the caller's);
        ``original``: the message's own headers."""
        topic, partition, offset = origin
        headers = [("reason", rejection.reason.encode()), ("message", rejection.message[:1000].encode()),
                   ("source_topic", topic.encode()), ("source_partition", str(partition).encode()),
                   ("source_offset", str(offset).encode()),
                   *((ORIGINAL_HEADER + name, data) for name, data in original)]
        await (await self.producer.send(self.topic, value, key=key, headers=headers))

    async def reject(self, routed: Routed, rejection: Rejection) -> None:
        """A routed event rejected later (``too_late``): dead-lettered with its bytes and key as published
        (a pack carries no headers, so its dead letter has none of the original's)."""
        self.count({rejection.reason: 1})
        await self.send(routed.key, routed.raw, rejection, (routed.topic, routed.partition, routed.offset))
