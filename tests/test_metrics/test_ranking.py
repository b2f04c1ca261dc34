"""The CLV ranking's per-customer sums: the compiled hash aggregation against numpy's sort-based one
(the code it replaced), on random keys and int64 values (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import retention_native
from hypothesis import given, settings
from hypothesis import strategies as st

INT64 = st.integers(-(2**63), 2**63 - 1)


def reference(keys: list[int], columns: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """``np.unique`` and ``np.add.at``: what ``metrics.ranking.known`` did before."""
    uniq, inverse = np.unique(np.asarray(keys, np.int64), return_inverse=True)
    sums = []
    for column in columns:
        out = np.zeros(len(uniq), np.int64)
        np.add.at(out, inverse, np.asarray(column, np.int64))  # int64 wraps, as the compiled sums do
        sums.append(out.tolist())
    return uniq.tolist(), sums


@st.composite
def rows(draw: st.DrawFn) -> tuple[list[int], list[list[int]]]:
    pool = draw(st.lists(INT64, min_size=1, max_size=40, unique=True))  # few keys: many repeats
    keys = draw(st.lists(st.sampled_from(pool), max_size=400))
    columns = [draw(st.lists(INT64, min_size=len(keys), max_size=len(keys))) for _ in range(draw(st.integers(0, 3)))]
    return keys, columns


@given(rows())
@settings(max_examples=300, deadline=None)
def test_compiled_sums_by_customer_equal_numpys(data: tuple[list[int], list[list[int]]]) -> None:
    keys, columns = data
    arrays = [np.asarray(c, np.int64) for c in columns]
    distinct, sums = retention_native.sums_by_key(np.asarray(keys, np.int64), arrays)
    got = (np.frombuffer(distinct, np.int64).tolist(), [np.frombuffer(s, np.int64).tolist() for s in sums])
    assert got == reference(keys, columns)


def test_a_column_unlike_the_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="a column of 1 values for 2 keys"):
        retention_native.sums_by_key(np.arange(2, dtype=np.int64), [np.arange(1, dtype=np.int64)])
    with pytest.raises(BufferError, match="not compatible with"):
        retention_native.positions(np.zeros(3, np.int32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="must be contiguous"):
        retention_native.positions(np.zeros(6, np.int64)[::2], np.zeros(0, np.int64))
