"""Follows the changelog partitions this worker owns into its KPI store.

The worker applies the events of the customers of its partitions; reading the same partitions of the
changelog gives its KPI store their facts, so each worker holds and follows its share only. When
partitions move (:meth:`ChangelogFollower.assign`), the store forgets those it gave away and reads the
new ones from a checkpoint's position or from their start; a partition counts as caught up once read to
where it ended when it was assigned. Once caught up, each entry's input timestamp gives the publish →
KPI visible latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaConsumer, TopicPartition

from metrics import blob
from metrics.records import decode_state
from metrics.store import KpiStore
from streams.follow.checkpoints import Checkpointer, Checkpoints
from streams.follow.holds import Holds
from streams.telemetry import BatchHistogram, Buckets
from streams.wire import Change, decode_change

log = logging.getLogger(__name__)
EMPTY_CHECKSUM = blob.checksum(blob.NO_FACTS)
TOPIC_WAIT_TRIES = 300  # a minute; then the follower fails and is restarted
BATCH = 1_000  # entries applied between two turns of the event loop: 20-40 ms


class ChangelogFollower:
    """Reads the owned partitions of ``topic`` forever, applying each entry to ``store``."""

    def __init__(self, reader: Callable[[], AIOKafkaConsumer], topic: str, store: KpiStore, holds: Holds, *,
                 visible: BatchHistogram | None = None, on_change: Callable[[], None] | None = None,
                 on_repair: Callable[[], None] | None = None, checkpoints: Checkpoints | None = None,
                 stages: tuple[Buckets, Buckets] | None = None) -> None:
        self.reader, self.topic, self.store, self.holds = reader, topic, store, holds
        self.visible, self.on_change, self.on_repair = visible, on_change, on_repair
        self.stages = stages  # histograms: input -> entry written, entry written -> read
        self.checkpointer = Checkpointer(checkpoints, store)
        self.owned: frozenset[int] | None = None  # None: not assigned yet
        self.positions: dict[int, int] = {}  # next offset of each followed partition
        self.ends: dict[int, int] = {}  # a partition is caught up at this offset
        self.caught: set[int] = set()
        self.restored: dict[int, int] = {}  # the checkpoint's positions, not yet taken up
        self.forgetting: set[int] = set()  # partitions given away whose facts are still in the store
        self._wake = asyncio.Event()
        self.records = self.repairs = 0
        self.started_at = 0  # entries before the positions reading started from (a checkpoint's, or 0)
        self.catch_up_records = 0  # entries read until caught up

    @property
    def caught_up(self) -> bool:
        """Assigned, and every owned partition read up to where it ended when it was assigned."""
        return self.owned is not None and self.owned <= self.caught

    def assign(self, partitions: frozenset[int]) -> None:
        """Follow ``partitions`` from now on (a rebalance); the others' facts are forgotten next."""
        gone = set(self.positions) - partitions
        for p in gone:
            self.positions.pop(p, None)
            self.ends.pop(p, None)
            self.caught.discard(p)
        self.forgetting |= gone
        self.owned = partitions
        self._wake.set()

    async def _forget(self, partitions: set[int]) -> None:
        """Drop the facts of ``partitions`` from the store; the new index is built in a thread (seconds with
        millions of facts), while the store answers no question (it holds more than is owned)."""
        index = await asyncio.to_thread(self.store.without, partitions)
        self.store.commit_drop(partitions, index)
        self.forgetting -= partitions

    async def run(self) -> None:
        """Follow until cancelled; after a failure, a new call resumes where the last one stopped."""
        consumer = self.reader()
        await consumer.start()
        try:
            if not self.records and not self.positions:
                self.restored = await self.checkpointer.restore()
                self.started_at = sum(self.restored.values())
            await self._wait_for_topic(consumer)
            followed: set[int] = set()
            while True:
                if self.forgetting:
                    await self._forget(set(self.forgetting))
                if self.owned is not None and set(self.owned) != followed:
                    followed = await self._follow(consumer, set(self.owned))
                batch = await consumer.getmany(timeout_ms=200, max_records=BATCH) if followed else {}
                if not followed:
                    self._wake.clear()
                    await self._idle()
                if batch:
                    await self.holds.writable()  # not while a KPI answer is being computed on this store
                    if self.owned is None or set(self.owned) == followed:  # else re-followed, re-read at once
                        self._apply(batch)
                self.checkpointer.maybe(dict(self.positions), self.records)
                await self._check_caught_up(consumer, followed)
                await asyncio.sleep(0)  # getmany returns at once while fetched entries wait: other stages' turn
        finally:
            await consumer.stop()
            if self.caught_up:  # a clean stop leaves a fresh checkpoint: the restart reads nothing twice
                self.checkpointer.now(dict(self.positions))

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), 1.0)

    async def _follow(self, consumer: AIOKafkaConsumer, partitions: set[int]) -> set[int]:
        """Read ``partitions``: each from where it was, the checkpoint's position, or its start."""
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if not tps:
            return partitions
        firsts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        stale = set(self.restored) - partitions  # in the checkpoint but not ours
        for tp in tps:
            p = tp.partition
            if p not in self.positions:
                self.caught.discard(p)
                start = self.restored.pop(p, None)
                if start is None or not firsts[tp] <= start <= ends[tp]:
                    stale.add(p)  # not in the checkpoint, or the changelog was recreated: from the start
                    start = firsts[tp]
                self.positions[p] = start
                self.ends[p] = ends[tp]
            consumer.seek(tp, self.positions[p])
        await self._forget({p for p in stale if p in self.store.partitions()})
        self.restored = {p: o for p, o in self.restored.items() if p not in stale}
        log.info("following %s partitions %s", self.topic, sorted(partitions))
        return partitions

    async def _check_caught_up(self, consumer: AIOKafkaConsumer, followed: set[int]) -> None:
        # Only partitions followed now: one given away meanwhile has no position any more
        pending = [p for p in followed if p in self.positions and p not in self.caught]
        for p in pending:
            if self.positions[p] >= self.ends[p]:
                self.caught.add(p)
                log.info("%s partition %d caught up (%d entries read in all)", self.topic, p, self.records)
        if pending and self.caught_up:
            self.catch_up_records = self.records

    def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        store = self.store
        stamps = Stamps()
        for tp, records in batch.items():
            if tp.partition not in (self.owned or ()):  # given away while this batch was fetched
                continue
            apply_entries(store, tp.partition, records, stamps, self._repaired)
            self.records += len(records)
            if records:
                self.positions[tp.partition] = records[-1].offset + 1
        if self.visible is not None and self.caught_up and stamps.published:
            self._observe(*stamps.arrays())
        if self.on_change is not None:
            self.on_change()

    def _observe(self, published_ms: npt.NDArray[np.float64], written_ms: npt.NDArray[np.float64]) -> None:
        """The batch's latencies, observed at once: publish -> visible, and its two stages."""
        now_ms = time.time() * 1000
        if self.visible is not None:
            self.visible.observe_many(np.maximum(now_ms - published_ms, 0.0) / 1000)
        if self.stages is not None:
            self.stages[0].observe_many(np.maximum(written_ms - published_ms, 0.0) / 1000)
            self.stages[1].observe_many(np.maximum(now_ms - written_ms, 0.0) / 1000)

    def _repaired(self, key: bytes) -> None:
        # Entries of this key were skipped (compacted away under the reader, or the log was rewritten).
        self.repairs += 1
        if self.on_repair is not None:
            self.on_repair()
        log.warning("changelog %s: facts of a key did not chain; replaced them from its latest state", self.topic)

    async def _wait_for_topic(self, consumer: AIOKafkaConsumer) -> None:
        # The worker creates the changelog topic at start-up, maybe just before this runs.
        for _ in range(TOPIC_WAIT_TRIES):
            if self.topic in await consumer.topics():
                return
            await asyncio.sleep(0.2)
        raise LookupError(f"changelog topic {self.topic} does not exist")


class Stamps:
    """Per applied entry with an input timestamp: that timestamp, and the entry's own (when its owner
    wrote it), in ms; as the int64 bytes the compiled path gives."""

    def __init__(self) -> None:
        self.published: list[bytes] = []
        self.written: list[bytes] = []

    def add(self, published_ms: bytes, written_ms: bytes) -> None:
        if published_ms:
            self.published.append(published_ms)
            self.written.append(written_ms)

    def arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        return (np.frombuffer(b"".join(self.published), np.int64).astype(np.float64),
                np.frombuffer(b"".join(self.written), np.int64).astype(np.float64))  # fmt: skip


def apply_entries(store: KpiStore, partition: int, records: list[Any], stamps: Stamps | None = None,
                  on_repair: Callable[[bytes], None] | None = None) -> None:
    """Apply changelog records of ``partition`` in order: runs of them in one compiled call, and each
    one it leaves (a tombstone, a repair, anything it does not take) by :func:`apply_entry`."""
    start = 0
    while start < len(records):
        followed = store.follow(partition, records, start)
        if stamps is not None:
            stamps.add(followed.published_ms, followed.written_ms)
        start = followed.next
        if start < len(records):
            record = records[start]
            change = apply_entry(store, partition, record.key, record.value, on_repair)
            if stamps is not None and change is not None and change.timestamp_ms:
                stamps.add(_int64(change.timestamp_ms), _int64(record.timestamp))
            start += 1


def _int64(value: int) -> bytes:
    return np.int64(value).tobytes()


def apply_entry(store: KpiStore, partition: int, key: bytes, value: bytes | None,
                on_repair: Callable[[bytes], None] | None = None) -> Change | None:
    """Apply one changelog entry of ``partition`` to ``store``; ``on_repair`` hears of keys whose facts
    had to be replaced because the entry's delta did not start from them. A tombstone (the monitor
    writes none) removes the key's facts."""
    if value is None:
        store.update(partition, key, blob.Delta(0, EMPTY_CHECKSUM, blob.NO_FACTS, blob.NO_FACTS), lambda: blob.NO_FACTS)
        return None
    change = decode_change(value)
    delta = blob.Delta(change.before, change.after, change.removed, change.added)
    if not store.update(partition, key, delta, lambda: decode_state(change.state).facts,
                        change.newest_us) and on_repair is not None:
        on_repair(key)
    return change
