"""Stage 2: apply packed batches of routed events to the states of the keys of owned partitions.

Design notes: docs/architecture.md, "streams/apply/stage.py".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from streams.apply.processor import Applied, Processor
from streams.apply.stores import PartitionStore, open_store
from streams.contract.decode import Rejection
from streams.exceptions import StoreBehind
from streams.pacing import name_thread
from streams.ports import LogReader, Producer
from streams.wire import Routed, decode_batch, decode_change

log = logging.getLogger(__name__)
APPLY_THREAD = "retention-apply"

Reject = Callable[[Routed, Rejection], Awaitable[None]]
Changed = Callable[[int, list[bytes]], None]  # (partition, keys): their states were just written
Timed = Callable[[str, float], None]  # (stage, seconds): where an event's way to the changelog goes


@dataclass
class Counts:
    """Outcomes of one batch, for the pipeline metrics (counted once per batch, not per event)."""

    events: dict[str, int]
    duplicates: int
    ignored: dict[str, int]
    event_times_us: list[int]


class ApplyStage:
    """The per-partition stores of the keys this worker owns, and the batch logic that updates them."""

    def __init__(
        self,
        *,
        processor: Processor,
        producer: Producer,
        reader: LogReader,
        changelog: str,
        store_url: str,
        data_dir: Path,
        reject: Reject,
        on_counts: Callable[[Counts], None],
        on_restored: Callable[[int], None] = lambda n: None,
        on_changed: Changed | None = None,
        on_timing: Timed | None = None,
    ) -> None:
        self.processor = processor
        self.producer = producer
        self.changelog = changelog
        self.store_url = store_url
        self.data_dir = data_dir
        self.reader = reader
        self.reject = reject
        self.on_counts = on_counts
        self.on_restored = on_restored
        self.on_changed = on_changed  # hears of every key whose state is written (at-risk scoring)
        self.on_timing = on_timing
        self.stores: dict[int, PartitionStore] = {}
        self._trusted: set[int] = set()
        self._locks: dict[int, asyncio.Lock] = {}
        self.restored_records = 0
        self._thread: ThreadPoolExecutor | None = None  # where the packs are applied, off the loop
        self._pending: asyncio.Future[dict[int, str]] | None = None  # the last turn's states on their way to the stores
        self._behind: set[int] = set()  # partitions whose store missed a turn's states (set on the thread)

    def trusted(self) -> frozenset[int]:
        """Partitions whose store is caught up with the changelog."""
        return frozenset(self._trusted)

    # -- ownership -------------------------------------------------------------------------------

    def revoked(self, partitions: set[int]) -> None:
        """Partitions may move to another worker: their stores must re-read the changelog before use."""
        self._trusted -= partitions

    def assigned(self, partitions: set[int]) -> None:
        """Close the stores of partitions this worker no longer owns."""
        for partition in [p for p in self.stores if p not in partitions]:
            self.stores.pop(partition).close()
            self._trusted.discard(partition)

    async def store(self, partition: int) -> PartitionStore:
        """The store of ``partition``, caught up with the changelog (read from where it stopped) and
        holding the states of every turn handled so far."""
        store = await self._store(partition)
        await self.settled()
        return store

    async def settled(self) -> None:
        """Until the states of every turn handled so far are written (or failed to be)."""
        pending = self._pending
        if pending is not None:
            await asyncio.wait([pending])

    async def _store(self, partition: int) -> PartitionStore:
        """The store of ``partition``, caught up with the changelog; a turn's states may still be on
        their way into it, ahead of any read of the stage's thread."""
        store = self.stores.get(partition)
        if store is not None and partition in self._trusted:
            return store
        async with self._locks.setdefault(partition, asyncio.Lock()):  # one restore at a time
            return await self._restore(partition)

    async def _restore(self, partition: int) -> PartitionStore:
        store = self.stores.get(partition)
        if store is not None and partition in self._trusted:
            return store
        if store is None:
            store = self.stores[partition] = open_store(self.store_url, partition, self.data_dir)
        began = time.monotonic()
        await self.settled()  # no earlier turn's write of this store is left behind the catch-up
        read = await self._catch_up(store)
        self._behind.discard(partition)
        self._trusted.add(partition)
        log.info("partition %d: store caught up with the changelog (%d entries read, %d keys, %.1fs)",
                 partition, read, len(store), time.monotonic() - began)
        return store

    async def _catch_up(self, store: PartitionStore) -> int:
        first, end = await self.reader.bounds(self.changelog, store.partition)
        if not first <= store.next_offset <= end:  # the topic was recreated or truncated
            log.warning("partition %d: store offset %d outside the changelog [%d, %d]; rebuilding",
                        store.partition, store.next_offset, first, end)
            store.reset()
        read = 0
        async for records in self.reader.read(self.changelog, store.partition, max(store.next_offset, first), end):
            if not records:
                continue
            items = [(r.key or b"", None if r.value is None else decode_change(r.value).state) for r in records]
            store.write(items, records[-1].offset + 1)
            read += len(records)
            if self.on_changed is not None:
                self.on_changed(store.partition, [key for key, _ in items])
        if store.next_offset < end:  # only compaction gaps or transaction markers were left
            store.write((), end)
        self.restored_records += read
        self.on_restored(read)
        return read

    # -- packed batches --------------------------------------------------------------------------

    async def handle(self, packs: list[tuple[int, bytes, float]]) -> None:
        """Apply packed batches ``(partition, value, written_at)`` (in offset order per partition) and
        wait until their changelog entries are acknowledged; on failure the partitions re-read their
        changelog before the next attempt, so a retry never works from a state Kafka does not have.

        A partition's entries are sent as soon as it is applied, so Kafka acknowledges them while the
        thread applies the next partition; the states go to the store after this returns (see
        :meth:`_persist_later`)."""
        began = time.time()
        by_partition: dict[int, list[tuple[bytes, float]]] = {}
        for partition, value, written_at in packs:
            by_partition.setdefault(partition, []).append((value, written_at))
            if self.on_timing is not None and written_at:
                self.on_timing("queue", max(began - written_at, 0.0))
        written: list[tuple[PartitionStore, list[tuple[bytes, bytes, bytes]], asyncio.Future[int]]] = []
        try:
            counts = Counts({}, 0, {}, [])
            rejects: list[Awaitable[None]] = []
            for partition, values in by_partition.items():
                store = await self._store(partition)
                changes = await self._apply(store, values, counts, rejects)
                written.append((store, changes, asyncio.ensure_future(self._write(partition, changes))))
            offsets = await asyncio.gather(*(w for _, _, w in written))
            if rejects:
                await asyncio.gather(*rejects)
        except BaseException:
            self._trusted -= set(by_partition)
            for _, _, write in written:  # a write still in flight ends on its own; nobody waits for it
                write.add_done_callback(_retrieve)
            raise
        self._persist_later([(store, changes, end) for (store, changes, _), end in zip(written, offsets, strict=True)
                             if changes])
        self.on_counts(counts)
        if self.on_timing is not None:
            self.on_timing("apply", time.time() - began)

    def _persist_later(self, done: list[tuple[PartitionStore, list[tuple[bytes, bytes, bytes]], int]]) -> None:
        """The acknowledged states of a turn into their stores on the stage's thread, queued behind the
        apply just done and ahead of the next one, which therefore reads them; the loop does not wait.
        A turn of 128 packs writes tens of thousands of states. Only once they are written are the keys
        announced: at-risk scoring reads them from the store. A failed write leaves its partitions behind
        the changelog: the next apply of them fails, and the retry re-reads the changelog first."""
        if not done:
            return
        pending = asyncio.get_running_loop().run_in_executor(self._executor(), self._persist, done)
        self._pending = pending
        pending.add_done_callback(lambda future: self._persisted(done, future))

    def _persist(self, done: list[tuple[PartitionStore, list[tuple[bytes, bytes, bytes]], int]]) -> dict[int, str]:
        """Write each store's states; the partitions whose write failed, with the error's name."""
        failed: dict[int, str] = {}
        for store, changes, next_offset in done:
            try:
                store.write(((key, state) for key, state, _ in changes), next_offset)
            except Exception as exc:  # the other partitions' states are written all the same
                self._behind.add(store.partition)
                failed[store.partition] = type(exc).__name__
        return failed

    def _persisted(self, done: list[tuple[PartitionStore, list[tuple[bytes, bytes, bytes]], int]],
                   future: asyncio.Future[dict[int, str]]) -> None:
        if self._pending is future:
            self._pending = None
        if future.cancelled() or future.exception() is not None:  # the thread is gone: nothing was written
            failed = {store.partition: "not run" for store, _, _ in done}
        else:
            failed = future.result()
        self._trusted -= set(failed)
        written_to = {store.partition: store for store, _, _ in done}
        moved = {p for p in failed if self.stores.get(p) is not written_to[p]}
        if set(failed) - moved:  # a store closed meanwhile went with its partition: nothing to say
            log.warning("partitions %s: a turn's states were not written to the store (%s); they re-read the "
                        "changelog", sorted(set(failed) - moved), ", ".join(sorted(set(failed.values()))))
        if self.on_changed is not None:
            for store, changes, _ in done:
                if store.partition not in failed:
                    self.on_changed(store.partition, [key for key, _, _ in changes])

    async def _apply(self, store: PartitionStore, values: list[tuple[bytes, float]], counts: Counts,
                     rejects: list[Awaitable[None]]) -> list[tuple[bytes, bytes, bytes]]:
        """The changelog entries ``(key, state, entry)`` of one partition's packs; counts and rejects.

        The packs go in one call on the stage's own thread: the state reads (RocksDB's multi-get) and
        the compiled step release the GIL, so they use the second core while the loop follows the
        changelog and fetches; one call (not one per pack) keeps the GIL hand-overs few."""
        packed = [value for value, _ in values]
        applied = await asyncio.get_running_loop().run_in_executor(self._executor(), self._apply_packs, store, packed)
        if self.on_timing is not None:
            for (_, written_at), oldest in zip(values, applied.oldest_ms, strict=True):
                if oldest and written_at:
                    self.on_timing("route", max(written_at - oldest / 1000, 0.0))
        for name, n in applied.events.items():
            counts.events[name] = counts.events.get(name, 0) + n
        counts.duplicates += applied.duplicates
        for reason, n in applied.ignored.items():
            counts.ignored[reason] = counts.ignored.get(reason, 0) + n
        counts.event_times_us += applied.times_us
        for pack, index, why in applied.too_late:  # rare: only these are decoded here
            item = decode_batch(values[pack][0])[index]
            rejects.append(self.reject(item, Rejection("too_late", f"event {item.rec.id!r}: {why}")))
        return applied.changes

    def _apply_packs(self, store: PartitionStore, packed: list[bytes]) -> Applied:
        """On the stage's thread, after every earlier turn's states were written (or failed to be)."""
        if store.partition in self._behind:
            raise StoreBehind(f"partition {store.partition}: the store missed a turn's states")
        return self.processor.apply_packs(packed, store.get_many)

    def _executor(self) -> ThreadPoolExecutor:
        """The stage's one thread: reads, applies and writes of the states keep their order on it."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, APPLY_THREAD, initializer=name_thread, initargs=(APPLY_THREAD,))
        return self._thread

    async def _write(self, partition: int, changes: list[tuple[bytes, bytes, bytes]]) -> int:
        """Write the changelog entries; return the offset after the last one (once acknowledged)."""
        if not changes:
            return 0
        return await self.producer.send_all(self.changelog, partition, [(key, value) for key, _, value in changes])

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        for store in self.stores.values():
            store.close()
        self.stores.clear()


def _retrieve(future: asyncio.Future[int]) -> None:
    """Mark the outcome of a write nobody awaits any more as seen (asyncio warns of unseen errors)."""
    if not future.cancelled():
        future.exception()
