"""Both state stores answer a batch's keys at once exactly as one at a time, across writes and a reopen;
RocksDB stores written by an older version (Snappy blocks) still read."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rocksdict import DBCompressionType, Rdict

from streams.apply.stores import WRITE_BATCH, _options, open_store

KEYS = st.binary(min_size=1, max_size=6)
STATES = st.one_of(st.none(), st.binary(max_size=40))


@pytest.mark.parametrize("url", ["memory://", "rocksdb://"])
def test_get_many_is_get_for_each(url: str, tmp_path: Path) -> None:
    @settings(max_examples=40, deadline=None)
    @given(st.dictionaries(KEYS, STATES, max_size=30), st.lists(KEYS, max_size=30))
    def check(writes: dict[bytes, bytes | None], asked: list[bytes]) -> None:
        store = open_store(url, 0, tmp_path / "state")
        try:
            store.write(writes.items(), store.next_offset + 1)
            keys = [*writes, *asked]
            assert store.get_many(keys) == [store.get(key) for key in keys]
        finally:
            store.close()

    check()


def test_a_write_larger_than_a_batch_is_whole_after_a_reopen(tmp_path: Path) -> None:
    """RocksDB gets a turn's states a batch at a time: all of them, deletions and the offset are there."""
    store = open_store("rocksdb://", 0, tmp_path / "state")
    n = 2 * WRITE_BATCH + 7
    store.write(((b"k%d" % i, b"s%d" % i) for i in range(n)), 5)
    store.write(((b"k%d" % i, None) for i in range(0, n, 3)), 9)
    store.close()
    again = open_store("rocksdb://", 0, tmp_path / "state")
    try:
        assert again.next_offset == 9
        assert again.get_many([b"k%d" % i for i in range(n)]) == [
            None if i % 3 == 0 else b"s%d" % i for i in range(n)]
    finally:
        again.close()


def test_a_store_written_with_snappy_blocks_reopens_with_todays_options(tmp_path: Path) -> None:
    """Older versions compressed the blocks with Snappy: their files still read, and the store's own
    options (uncompressed blocks, the shared cache) apply to the reopened DB, not the recorded ones."""
    directory = tmp_path / "state" / "partition-0"
    directory.parent.mkdir(parents=True)
    old = _options()
    old.set_compression_type(DBCompressionType.snappy())
    db = Rdict(str(directory), old)
    for i in range(3000):
        db[b"k%d" % i] = b"old state %d " % i * 8
    db.flush()
    db.close()
    old_files = set(directory.glob("*.sst"))
    store = open_store("rocksdb://", 0, tmp_path / "state")
    store.write(((b"k%d" % i, b"new state %d " % i * 8) for i in range(0, 3000, 2)), 7)
    store.close()  # flushes the memtable into a table file of its own
    new_files = set(directory.glob("*.sst")) - old_files
    written = sum(len(b"new state %d " % i * 8) for i in range(0, 3000, 2))
    assert sum(f.stat().st_size for f in new_files) > written  # stored as written: uncompressed
    again = open_store("rocksdb://", 0, tmp_path / "state")
    try:
        assert again.next_offset == 7
        assert again.get_many([b"k%d" % i for i in range(3000)]) == [
            (b"new state %d " if i % 2 == 0 else b"old state %d ") % i * 8 for i in range(3000)]
    finally:
        again.close()
