"""The compact id -> value table behaves like a dict, through growth and overwrites."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.keytable import KeyTable

ids = st.one_of(st.integers(1, 40), st.integers(1, 2**63 - 1), st.sampled_from([1, 2**63 - 1, 1 << 62]))


@settings(max_examples=200)
@given(st.lists(st.tuples(ids, st.integers(-(2**63), 2**63 - 1)), max_size=300))
def test_table_is_a_dict(puts: list[tuple[int, int]]) -> None:
    table, reference = KeyTable(capacity=2), dict[int, int]()
    for who, value in puts:
        table.put(who, value)
        reference[who] = value
    assert len(table) == len(reference)
    for who, value in reference.items():
        assert table.get(who) == value
        assert who in table
    for who in (5, 6, 2**62 + 3):
        assert table.get(who) == reference.get(who)


def test_zero_and_negative_ids_are_refused() -> None:
    for bad in (0, -1, 2**63):
        with pytest.raises(ValueError, match="not in"):
            KeyTable().put(bad, 1)


def test_keys_sharing_one_home_slot_survive_growth() -> None:
    """Every key below has slot 0 as its home at any table size here: one long probe chain per growth."""
    table = KeyTable(capacity=2)
    keys = [i << 40 for i in range(1, 600)]
    for i, who in enumerate(keys):
        table.put(who, -i)
    assert len(table) == len(keys)
    assert [table.get(who) for who in keys] == [-i for i in range(len(keys))]
    assert table.get(7 << 40) == -6
    assert table.get(1 << 39) is None
