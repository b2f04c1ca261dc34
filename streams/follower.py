"""Follows *every* partition of the customer changelog into this worker's KPI store.

The states are partitioned (each worker applies events only for the customers it owns); the
changelog carries each key's new fact set to all workers, so every worker can answer any KPI query
and export any segment's gauges. A plain aiokafka consumer without a group reads it, in batches.
Once caught up, each entry's input timestamp gives the publish → KPI visible latency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Histogram

from metrics.store import KpiStore
from streams.wire import decode_change

log = logging.getLogger(__name__)


class ChangelogFollower:
    """Reads ``topic`` from the beginning, forever, applying each record to ``store``."""

    def __init__(self, reader: Callable[[], AIOKafkaConsumer], topic: str, partitions: int, store: KpiStore, *,
                 visible: Histogram | None = None, on_change: Callable[[], None] | None = None) -> None:
        self.reader = reader
        self.visible = visible
        self.on_change = on_change
        self._positions: dict[TopicPartition, int] = {}
        self.topic = topic
        self.partitions = partitions
        self.store = store
        self.caught_up = False
        self.records = 0
        self._start_ends: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        """Follow until cancelled; after a failure, a new call resumes where the last one stopped."""
        consumer = self.reader()
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            for tp in partitions:
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            if not self._start_ends:
                self._start_ends = await consumer.end_offsets(partitions)
                log.info("following %s (%d partitions) from the beginning", self.topic, len(partitions))
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
                if batch:
                    self._apply(batch)
                if not self.caught_up:
                    self.caught_up = await self._reached(consumer)
        finally:
            await consumer.stop()

    def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        replace = self.store.replace
        observe = self.visible.observe if self.visible is not None and self.caught_up else None
        now = time.time()
        for tp, records in batch.items():
            for record in records:
                if record.value is None:
                    replace(record.key, None)
                    continue
                change = decode_change(record.value)
                replace(record.key, change.facts, change.newest_us)
                if observe is not None and change.timestamp_ms:
                    observe(max(now - change.timestamp_ms / 1000, 0.0))
            self.records += len(records)
            if records:
                self._positions[tp] = records[-1].offset + 1
        if self.on_change is not None:
            self.on_change()

    async def _reached(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether every partition was read up to where it ended when following started."""
        for tp, end in self._start_ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # The worker creates the changelog topic at start-up, maybe just before this runs.
        while True:
            if self.topic in await consumer.topics():
                return [TopicPartition(self.topic, p) for p in range(self.partitions)]
            await asyncio.sleep(0.2)
