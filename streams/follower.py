"""Follows *every* partition of the customer table's changelog into this worker's KPI store.

The table itself is partitioned (each worker applies events only for the customers it owns); the
changelog carries each new state to all workers, so every worker can answer any KPI query and
export any segment's gauges. A plain aiokafka consumer without a group reads it, in batches.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from metrics.store import KpiStore

log = logging.getLogger(__name__)


class ChangelogFollower:
    """Reads ``topic`` from the beginning, forever, applying each record to ``store``."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, store: KpiStore) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.store = store
        self.caught_up = False
        self.records = 0
        self._start_ends: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20, fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            self._start_ends = await consumer.end_offsets(partitions)
            log.info("following %s (%d partitions) from the beginning", self.topic, len(partitions))
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
                for records in batch.values():
                    for record in records:
                        self.store.replace(record.key, record.value)
                    self.records += len(records)
                if not self.caught_up:
                    self.caught_up = await self._reached(consumer)
        finally:
            await consumer.stop()

    async def _reached(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether every partition was read up to where it ended when following started."""
        for tp, end in self._start_ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # Faust creates the changelog topic (with the table's partitions) while the worker starts.
        while True:
            if self.topic in await consumer.topics():
                return [TopicPartition(self.topic, p) for p in range(self.partitions)]
            await asyncio.sleep(0.2)
