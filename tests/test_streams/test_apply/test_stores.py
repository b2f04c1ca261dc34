"""Both state stores answer a batch's keys at once exactly as one at a time, across writes and a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.apply.stores import open_store

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
