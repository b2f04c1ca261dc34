"""Both state stores answer a batch's keys at once exactly as one at a time, across writes and a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.apply.stores import WRITE_BATCH, open_store

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
