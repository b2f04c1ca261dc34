"""A consumer-group member that hands whole fetches to a handler, and commits only what it handled.

Design notes: docs/architecture.md, "streams/route/consumer.py".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]


class StageMetrics(Protocol):
    """What a batch consumer reports (:class:`streams.telemetry.ConsumerMetrics`, or a relay to it)."""

    def register(self, stage: str, lag: Callable[[], list[tuple[str, int, int]]]) -> None: ...

    def rebalanced(self, stage: str) -> None: ...

    def committed(self, stage: str, seconds: float) -> None: ...


class BatchConsumer:
    """Runs ``handle`` on every fetch of ``topics`` as member of ``group_id``."""

    def __init__(
        self,
        *,
        stage: str,
        options: dict[str, Any],
        group_id: str,
        topics: list[str],
        handle: Callable[[Batch], Awaitable[None]],
        metrics: StageMetrics,
        commit_interval: float = 1.0,
        max_records: int = 20_000,
    ) -> None:
        self.stage = stage
        self.options = options
        self.group_id = group_id
        self.topics = topics
        self.handle = handle
        self.metrics = metrics
        self.commit_interval = commit_interval
        self.max_records = max_records
        self.consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._done: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._next: dict[TopicPartition, int] = {}  # next offset to handle, per owned partition
        self._committed_at = 0.0
        metrics.register(stage, self.lag)

    async def run(self) -> None:
        consumer = self.consumer = AIOKafkaConsumer(
            group_id=self.group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            # The broker holds a fetch up to 200 ms for 256 KiB: at a live rate a batch (and every pack the
            # next stage pays per-message overhead on) holds many times more events than the first bytes
            # to arrive would give, for at most 200 ms more latency. With 50 ms / 64 KiB, 5,000 events/s
            # made 80 packs a second: the apply agent's buffer filled, and Faust then pauses for a second.
            fetch_max_wait_ms=200, fetch_min_bytes=256 << 10, max_partition_fetch_bytes=4 << 20,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000, **self.options,
        )
        consumer.subscribe(self.topics, listener=_Listener(self))
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
                if batch:
                    async with self._lock:
                        await self._handle(consumer, batch)
                if self._done and time.monotonic() - self._committed_at >= self.commit_interval:
                    async with self._lock:
                        await self._commit(consumer)
        finally:
            try:
                async with self._lock:
                    await self._commit(consumer)
            finally:
                await consumer.stop()
                self.consumer = None

    async def _handle(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        # A fetch can still hold records of partitions revoked while it was returned: skip them,
        # their next owner reads them from the committed offset.
        owned = consumer.assignment()
        batch = {tp: records for tp, records in batch.items() if records and tp in owned}
        if not batch:
            return
        await self.handle(batch)
        for tp, records in batch.items():
            self._done[tp] = self._next[tp] = records[-1].offset + 1

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        if not self._done:
            return
        began = time.perf_counter()
        offsets, self._done = self._done, {}
        try:
            await consumer.commit(offsets)
        except Exception:
            # Not fatal: the messages are handled, only re-read after a restart (and deduped).
            log.warning("%s: commit of %d partitions failed; will retry", self.stage, len(offsets), exc_info=True)
            self._done = {**offsets, **self._done}
            return
        self._committed_at = time.monotonic()
        self.metrics.committed(self.stage, time.perf_counter() - began)

    def lag(self) -> list[tuple[str, int, int]]:
        """``(topic, partition, messages not yet handled)`` of every owned partition."""
        consumer = self.consumer
        if consumer is None:
            return []
        out = []
        for tp, position in sorted(self._next.items()):
            high = consumer.highwater(tp)
            if high is not None:
                out.append((tp.topic, tp.partition, max(high - position, 0)))
        return out


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        owner = self.owner
        async with owner._lock:  # the batch in hand finishes first
            if owner.consumer is not None:
                await owner._commit(owner.consumer)
            owner._done = {tp: o for tp, o in owner._done.items() if tp not in revoked}
            owner._next = {tp: o for tp, o in owner._next.items() if tp not in revoked}
        owner.metrics.rebalanced(owner.stage)
        log.info("%s: partitions revoked: %s", owner.stage, sorted(f"{tp.topic}:{tp.partition}" for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.owner.consumer
        if consumer is not None:
            for tp in assigned:
                committed = await consumer.committed(tp)
                self.owner._next[tp] = committed if committed is not None else 0
        log.info("%s: partitions assigned: %s", self.owner.stage,
                 sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))
