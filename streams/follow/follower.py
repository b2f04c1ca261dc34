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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Histogram

from metrics import blob, snapshot
from metrics.index import FactIndex
from metrics.keytable import KeyTable
from metrics.records import decode_state
from metrics.store import KpiStore
from streams.wire import Change, decode_change

log = logging.getLogger(__name__)
EMPTY_CHECKSUM = blob.checksum(blob.encode([]))


@dataclass(frozen=True)
class Checkpoints:
    """Where and how often the KPI store is checkpointed, and which checkpoints may be used."""

    directory: Path
    fingerprint: str
    interval_s: float  # 0: never
    max_age_s: float  # younger than the changelog's min.compaction.lag.ms: nothing after it was compacted


class ChangelogFollower:
    """Reads ``topic`` from the beginning (or from a checkpoint), forever, applying each record to ``store``."""

    def __init__(self, reader: Callable[[], AIOKafkaConsumer], topic: str, partitions: int, store: KpiStore, *,
                 visible: Histogram | None = None, on_change: Callable[[], None] | None = None,
                 on_repair: Callable[[], None] | None = None, checkpoints: Checkpoints | None = None,
                 stages: tuple[Any, Any] | None = None) -> None:
        self.on_repair = on_repair
        self.stages = stages  # histograms: input -> entry written, entry written -> read
        self.checkpoints = checkpoints
        self._checkpointed_at = time.monotonic()
        self._checkpointed_records = -1
        self._writing: asyncio.Task[None] | None = None
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
        self.repairs = 0
        self.started_at = 0  # entries before the positions reading started from (a checkpoint's, or 0)
        self.catch_up_records = 0  # entries read until caught up

    async def run(self) -> None:
        """Follow until cancelled; after a failure, a new call resumes where the last one stopped."""
        consumer = self.reader()
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            if not self._start_ends:
                self._start_ends = await consumer.end_offsets(partitions)
                await self._restore(consumer, partitions)
            for tp in partitions:
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
                if batch:
                    self._apply(batch)
                self._maybe_checkpoint()  # also when idle: the last changes before a quiet spell count
                if not self.caught_up:
                    self.caught_up = await self._reached(consumer)
                    self.catch_up_records = self.records
        finally:
            await consumer.stop()
            if self.caught_up:  # a clean stop leaves a fresh checkpoint: the restart reads nothing twice
                self._checkpoint_now()

    async def _restore(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Start from the checkpoint if there is a usable one for this changelog, else from the start."""
        cp = self.checkpoints
        positions = None
        began = time.monotonic()
        if cp is not None:
            positions = await asyncio.to_thread(snapshot.read, cp.directory, self.store, cp.fingerprint, cp.max_age_s)
        if positions is not None:
            firsts = await consumer.beginning_offsets(partitions)
            by_tp = {TopicPartition(self.topic, p): o for p, o in positions.items()}
            fits = set(by_tp) == set(partitions)
            if fits and all(firsts[tp] <= o <= self._start_ends[tp] for tp, o in by_tp.items()):
                self._positions = by_tp
                self.started_at = sum(by_tp.values())
                log.info("following %s from a checkpoint (%d customers, %.1fs to load)", self.topic,
                         self.store.customers(), time.monotonic() - began)
                return
            log.warning("the checkpoint does not fit changelog %s (recreated?); reading it from the start", self.topic)
            self.store.load(FactIndex(), KeyTable(), customers=0, newest_us=None)
        log.info("following %s (%d partitions) from the beginning", self.topic, len(partitions))

    def _maybe_checkpoint(self) -> None:
        cp = self.checkpoints
        if cp is None or not cp.interval_s or not self.caught_up:
            return
        if time.monotonic() - self._checkpointed_at < cp.interval_s or (self._writing and not self._writing.done()):
            return
        if self.records == self._checkpointed_records:  # nothing new since the last one
            return
        self._checkpointed_at, self._checkpointed_records = time.monotonic(), self.records
        taken = snapshot.capture(self.store, self._partition_positions(), cp.fingerprint)  # consistent: between batches
        self._writing = asyncio.get_running_loop().create_task(asyncio.to_thread(snapshot.write, taken, cp.directory))

    def _checkpoint_now(self) -> None:
        cp = self.checkpoints
        if cp is None or not cp.interval_s:
            return
        try:
            snapshot.write(snapshot.capture(self.store, self._partition_positions(), cp.fingerprint), cp.directory)
        except OSError:
            log.warning("could not write the KPI store checkpoint to %s", cp.directory, exc_info=True)

    def _partition_positions(self) -> dict[int, int]:
        return {tp.partition: offset for tp, offset in self._positions.items()}

    def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        store = self.store
        observe = self.visible.observe if self.visible is not None and self.caught_up else None
        now = time.time()
        for tp, records in batch.items():
            for record in records:
                change = apply_entry(store, record.key, record.value, self._repaired)
                if observe is not None and change is not None and change.timestamp_ms:
                    observe(max(now - change.timestamp_ms / 1000, 0.0))
                    if self.stages is not None:  # the entry's own timestamp is when the owner wrote it
                        self.stages[0].observe(max(record.timestamp - change.timestamp_ms, 0) / 1000)
                        self.stages[1].observe(max(now - record.timestamp / 1000, 0.0))
            self.records += len(records)
            if records:
                self._positions[tp] = records[-1].offset + 1
        if self.on_change is not None:
            self.on_change()

    def _repaired(self, key: bytes) -> None:
        # Entries of this key were skipped (compacted away under the reader, or the log was rewritten).
        self.repairs += 1
        if self.on_repair is not None:
            self.on_repair()
        log.warning("changelog %s: facts of a key did not chain; replaced them from its latest state", self.topic)

    async def _reached(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether every partition was read up to where it ended when following started."""
        positions = {tp: await consumer.position(tp) for tp in self._start_ends}
        if any(positions[tp] < end for tp, end in self._start_ends.items()):
            return False
        for tp, position in positions.items():  # a checkpoint needs every partition, read or not
            self._positions.setdefault(tp, position)
        return True

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # The worker creates the changelog topic at start-up, maybe just before this runs.
        while True:
            if self.topic in await consumer.topics():
                return [TopicPartition(self.topic, p) for p in range(self.partitions)]
            await asyncio.sleep(0.2)


def apply_entry(store: KpiStore, key: bytes, value: bytes | None,
                on_repair: Callable[[bytes], None] | None = None) -> Change | None:
    """Apply one changelog entry to ``store``; ``on_repair`` hears of keys whose facts had to be
    replaced because the entry's delta did not start from them. A tombstone (the monitor writes
    none) removes the key's facts."""
    if value is None:
        store.update(key, blob.Delta(0, EMPTY_CHECKSUM, [], []), list)
        return None
    change = decode_change(value)
    delta = blob.Delta(change.before, change.after, blob.decode(change.removed), blob.decode(change.added))
    if not store.update(key, delta, lambda: blob.decode(decode_state(change.state).facts), change.newest_us) \
            and on_repair is not None:
        on_repair(key)
    return change
