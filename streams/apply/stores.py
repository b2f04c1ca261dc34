"""Per-partition key → state stores of the apply stage, with the changelog offset they are complete to.

``memory://`` keeps the states in a dict: a restart replays the partition's changelog from the start.
``rocksdb://`` keeps them on disk (one RocksDB per partition under the worker's data dir) together
with the next changelog offset, written with the last write batch of a turn's states, so a restarted
worker — even after ``kill -9`` — replays only the changelog written after its last turn.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, cast

from rocksdict import BlockBasedOptions, Cache, DBCompressionType, Options, Rdict, WriteBatch, WriteBufferManager

_OFFSET_KEY = b"\x00retention-monitor:next-changelog-offset"
# RocksDB's defaults give every partition's DB a 64 MiB memtable of its own; these cap all of a
# worker's DBs together (block cache and memtables share one budget).
ROCKSDB_CACHE_BYTES = 64 << 20
ROCKSDB_MEMTABLES_BYTES = 32 << 20
WRITE_BATCH = 2_000  # states a write holds the GIL for (~1.2 MB, a few ms)
_shared: list[tuple[Cache, WriteBufferManager]] = []


def _options() -> Options:
    if not _shared:
        cache = Cache(ROCKSDB_CACHE_BYTES)
        _shared.append((cache, WriteBufferManager.new_write_buffer_manager_with_cache(
            ROCKSDB_MEMTABLES_BYTES, False, cache)))
    cache, memtables = _shared[0]
    options = Options(raw_mode=True)
    table = BlockBasedOptions()
    table.set_block_cache(cache)
    # Bloom filters (10 bits a key, in the shared cache): a state read skips the levels that do not hold
    # the key; about a quarter less CPU per read once the states outgrow the cache.
    table.set_bloom_filter(10, False)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)
    # Uncompressed blocks: once the states outgrow the block cache, Snappy's decompression was over a
    # third of a state read's CPU (and compaction compressed every block again); the files are about
    # twice as large, in the page cache rather than the process. Older compressed files still read.
    options.set_compression_type(DBCompressionType.none())
    options.set_write_buffer_manager(memtables)
    options.set_write_buffer_size(8 << 20)
    options.set_max_write_buffer_number(2)
    options.set_max_open_files(256)
    return options


def _open(directory: Path) -> Rdict:
    """The DB under ``directory`` with these options. Given no column families, rocksdict opens an
    existing DB with the ones its files recorded: compression as first created and an 8 MiB cache of
    its own per DB, not the worker's shared one."""
    options = _options()
    return Rdict(str(directory), options, column_families={"default": options})


class PartitionStore(Protocol):
    """States of the keys of one partition."""

    partition: int

    @property
    def next_offset(self) -> int:
        """The changelog offset this store is complete up to (exclusive)."""

    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The states of ``keys`` at once (one RocksDB multi-get for a batch's customers)."""

    def write(self, items: Iterable[tuple[bytes, bytes | None]], next_offset: int) -> None:
        """Set (``None``: delete) some keys and the changelog offset they bring the store to."""

    def reset(self) -> None:
        """Forget everything (the changelog will be replayed from its start)."""

    def key_chunks(self, size: int) -> Iterator[list[bytes]]:
        """Every key, ``size`` at a time. Writes may happen between chunks (a chunk holds nothing
        open): a key written meanwhile may be missed, so callers track writes from the start."""

    def close(self) -> None: ...

    def __len__(self) -> int:
        """How many keys it holds: for the logs, so RocksDB's estimate (counting a million keys holds
        the event loop for seconds)."""


class MemoryStore:
    """States in a dict; nothing survives the process."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self._states: dict[bytes, bytes] = {}
        self._next = 0

    @property
    def next_offset(self) -> int:
        return self._next

    def get(self, key: bytes) -> bytes | None:
        return self._states.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        states = self._states
        return [states.get(key) for key in keys]

    def write(self, items: Iterable[tuple[bytes, bytes | None]], next_offset: int) -> None:
        states = self._states
        for key, value in items:
            if value is None:
                states.pop(key, None)
            else:
                states[key] = value
        self._next = next_offset

    def reset(self) -> None:
        self._states.clear()
        self._next = 0

    def key_chunks(self, size: int) -> Iterator[list[bytes]]:
        keys = list(self._states)  # the dict may change size while the caller works between chunks
        for start in range(0, len(keys), size):
            yield keys[start:start + size]

    def close(self) -> None:
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)


class RocksStore:
    """States in a RocksDB under ``directory``, and the changelog offset they are complete to.

    The apply stage reads states on its own thread: a lock keeps a close (the partition moved away)
    or a reset from freeing the DB under a read in flight."""

    def __init__(self, partition: int, directory: Path) -> None:
        self.partition = partition
        self.directory = directory
        directory.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = _open(directory)
        raw = self._db.get(_OFFSET_KEY)
        self._next = int.from_bytes(raw, "big") if raw else 0

    @property
    def next_offset(self) -> int:
        return self._next

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        asked: list[str | int | float | bytes | bool] = list(keys)
        with self._lock:
            values = self._db.get(asked)  # RocksDB's MultiGet: ~30 % less CPU per key than one get each
        return cast(list[bytes | None], values)

    def write(self, items: Iterable[tuple[bytes, bytes | None]], next_offset: int) -> None:
        """Write the states in batches of ``WRITE_BATCH`` and the offset with the last one.

        RocksDB's write holds the GIL (a turn's 45,000 states at a million customers held it 0.1-0.3 s,
        and the event loop with it), so the states go a few MB at a time. A crash between two batches
        leaves states ahead of the offset: the changelog replayed from the offset writes the same ones."""
        batch, n = WriteBatch(raw_mode=True), 0
        with self._lock:
            for key, value in items:
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
                n += 1
                if n == WRITE_BATCH:
                    self._db.write(batch)
                    batch, n = WriteBatch(raw_mode=True), 0
            batch.put(_OFFSET_KEY, next_offset.to_bytes(8, "big"))
            self._db.write(batch)
        self._next = next_offset

    def reset(self) -> None:
        with self._lock:
            self._db.close()
            shutil.rmtree(self.directory, ignore_errors=True)
            self._db = _open(self.directory)
        self._next = 0

    def key_chunks(self, size: int) -> Iterator[list[bytes]]:
        last: bytes | None = None
        while True:
            # A fresh iterator per chunk: none stays open while the caller yields to the event loop
            # (the partition may be closed meanwhile; a closed DB then raises DbClosedError).
            it = self._db.iter()
            if last is None:
                it.seek_to_first()
            else:
                it.seek(last)
                if it.valid() and it.key() == last:
                    it.next()
            chunk: list[bytes] = []
            while it.valid() and len(chunk) < size:
                key = it.key()
                if key != _OFFSET_KEY:
                    chunk.append(key)
                it.next()
            del it
            if not chunk:
                return
            yield chunk
            last = chunk[-1]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        return max(0, (self._db.property_int_value("rocksdb.estimate-num-keys") or 0) - 1)  # the offset key


def open_store(url: str, partition: int, directory: Path) -> PartitionStore:
    """The store of ``partition`` for the ``store`` setting (``memory://`` or ``rocksdb://``)."""
    if url == "rocksdb://":
        return RocksStore(partition, directory / f"partition-{partition}")
    return MemoryStore(partition)
