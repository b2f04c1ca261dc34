"""TimeSums and PairIndex agree with brute force on lists, across day boundaries, negative and huge times."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.timeindex import DAY_US, PairIndex, TimeSums, day_of

days = st.integers(-3, 3)
times = st.one_of(
    days.map(lambda d: d * DAY_US),  # exactly on a day boundary
    st.builds(lambda d, o: d * DAY_US + o, days, st.integers(-2, 2)),  # just around one
    st.integers(-4 * DAY_US, 4 * DAY_US),
    st.sampled_from([-(2**62), 2**62, -(2**62) + 1, 2**62 - 1]),
)
values = st.one_of(st.integers(-3, 3), st.integers(-(10**18), 10**18))
bounds = st.one_of(st.none(), times)
T = TypeVar("T", int, int | None)


def _near(base: st.SearchStrategy[T], items: Sequence[tuple[int | None, int]]) -> st.SearchStrategy[T | int]:
    """``base``, or a time of an existing item (either end of a pair), give or take one µs."""
    ends = sorted({t for item in items for t in item if t is not None})
    if not ends:
        return base
    return st.one_of(base, st.builds(lambda t, o: t + o, st.sampled_from(ends), st.integers(-1, 1)))


def _in(t: int, start: int | None, end: int | None) -> bool:
    return (start is None or start <= t) and (end is None or t < end)


def _check_sums(index: TimeSums, items: list[tuple[int, int]], start: int | None, end: int | None) -> None:
    chosen = [v for t, v in items if _in(t, start, end)]
    assert index.count(start, end) == len(chosen)
    assert index.total(start, end) == sum(chosen)
    assert sorted(index.values(start, end)) == sorted(chosen)


@settings(max_examples=150)
@given(st.data())
def test_time_sums_match_brute_force(data: st.DataObject) -> None:
    index, items = TimeSums(), list[tuple[int, int]]()
    for _ in range(data.draw(st.integers(0, 40))):
        if len(items) > 0 and data.draw(st.booleans()):
            t, v = data.draw(st.sampled_from(items) if data.draw(st.booleans()) else st.tuples(times, values))
            if (t, v) in items:
                index.remove(t, v)
                items.remove((t, v))
            else:
                with pytest.raises(KeyError):
                    index.remove(t, v)
        else:
            t, v = data.draw(st.tuples(times, values))
            if data.draw(st.booleans()) and items:
                t = data.draw(st.sampled_from(items))[0]  # same time again, maybe the same item
            index.add(t, v)
            items.append((t, v))
        assert len(index) == len(items)
        assert bool(index) == bool(items)
        _check_sums(index, items, data.draw(bounds), data.draw(bounds))
    for _ in range(10):
        _check_sums(index, items, data.draw(_near(bounds, items)), data.draw(_near(bounds, items)))


def _check_pairs(index: PairIndex, pairs: list[tuple[int | None, int]], start: int, end: int) -> None:
    expected = sum(1 for a, b in pairs if a is not None and a >= start and b < end)
    assert index.inside(start, end) == expected


pair = st.one_of(
    st.builds(lambda a, d: (a, a + d), times, st.one_of(st.integers(0, 3), st.integers(1, 3 * DAY_US))),
    st.builds(lambda b: (None, b), times),
)


@settings(max_examples=150)
@given(st.data())
def test_pair_index_matches_brute_force(data: st.DataObject) -> None:
    index, pairs = PairIndex(), list[tuple[int | None, int]]()
    for _ in range(data.draw(st.integers(0, 40))):
        if len(pairs) > 0 and data.draw(st.booleans()):
            a, b = data.draw(st.sampled_from(pairs) if data.draw(st.booleans()) else pair)
            if (a, b) in pairs:
                index.remove(a, b)
                pairs.remove((a, b))
            else:
                with pytest.raises(KeyError):
                    index.remove(a, b)
        else:
            a, b = data.draw(pair)
            index.add(a, b)
            pairs.append((a, b))
        assert len(index) == len(pairs)
        _check_pairs(index, pairs, data.draw(times), data.draw(times))
    for _ in range(10):
        _check_pairs(index, pairs, data.draw(_near(times, pairs)), data.draw(_near(times, pairs)))


@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(0, 3), values), max_size=200), bounds, bounds)
def test_time_sums_with_many_items_per_day(raw: list[tuple[int, int, int]], start: int | None, end: int | None) -> None:
    """Dense days exercise both sides of the boundary-day scan."""
    items = [(d * DAY_US + o, v) for d, o, v in raw]
    index = TimeSums()
    for t, v in items:
        index.add(t, v)
    _check_sums(index, items, start, end)


def test_empty_structures_return_zero() -> None:
    sums, pairs = TimeSums(), PairIndex()
    assert (len(sums), bool(sums), len(pairs), bool(pairs)) == (0, False, 0, False)
    assert sums.count(None, None) == sums.total(None, None) == sums.count(-5, 5) == sums.total(-5, 5) == 0
    assert sums.values(None, None) == []
    assert pairs.inside(-DAY_US, DAY_US) == 0


def test_remove_of_missing_raises_key_error() -> None:
    sums, pairs = TimeSums(), PairIndex()
    sums.add(10, 7)
    pairs.add(10, 20)
    pairs.add(None, 20)
    with pytest.raises(KeyError):
        sums.remove(10, 8)
    with pytest.raises(KeyError):
        sums.remove(11, 7)
    with pytest.raises(KeyError):
        pairs.remove(10, 21)
    with pytest.raises(KeyError):
        pairs.remove(None, 21)
    sums.remove(10, 7)
    with pytest.raises(KeyError):
        sums.remove(10, 7)


def test_multiset_and_exact_day_boundaries() -> None:
    sums = TimeSums()
    for t, v in [(DAY_US - 1, 5), (DAY_US, 3), (DAY_US, 3), (-1, -2), (0, 1)]:
        sums.add(t, v)
    assert day_of(-1) == -1
    assert (sums.count(DAY_US, 2 * DAY_US), sums.total(DAY_US, 2 * DAY_US)) == (2, 6)
    assert (sums.count(None, DAY_US), sums.total(None, DAY_US)) == (3, 4)
    assert (sums.count(0, None), sums.total(0, None)) == (4, 12)
    sums.remove(DAY_US, 3)
    assert (sums.count(DAY_US, None), sums.total(DAY_US, None)) == (1, 3)
    assert sorted(sums.values(-1, DAY_US + 1)) == [-2, 1, 3, 5]


def test_pairs_inside_windows() -> None:
    pairs = PairIndex()
    for a, b in [(0, DAY_US), (0, DAY_US), (DAY_US - 1, 3 * DAY_US), (None, 5)]:
        pairs.add(a, b)
    assert pairs.inside(0, DAY_US) == 0  # b == end is not inside
    assert pairs.inside(0, DAY_US + 1) == 2
    assert pairs.inside(1, 3 * DAY_US + 1) == 1
    assert pairs.inside(-(10**9), 10**9) == 0  # the open pair (None, 5) never counts
    pairs.remove(0, DAY_US)
    assert pairs.inside(0, DAY_US + 1) == 1


@pytest.mark.parametrize(
    ("raw", "start", "end", "expected"),
    [
        ([(0, 2), (1, 3), (2, 4)], 1, 2, 0),  # few pairs before start: ends < end minus those before start
        ([(0, 2), (1, 3), (2, 4)], 1, 4, 1),
        ([(0, 5), (1, 5), (2, 3)], 2, 3, 0),  # most pairs before start: scan the pairs from start on
        ([(0, 5), (1, 5), (2, 3)], 2, 4, 1),
    ],
)
def test_pairs_ending_at_end_are_outside(raw: list[tuple[int, int]], start: int, end: int, expected: int) -> None:
    pairs = PairIndex()
    for a, b in raw:
        pairs.add(a, b)
    assert pairs.inside(start, end) == expected
    pairs.add(7, 7)  # two orders at the same instant: a point interval
    assert pairs.inside(7, 8) == 1
    assert pairs.inside(7, 7 + 0) == 0
    with pytest.raises(ValueError, match="reversed interval"):
        pairs.add(6, 5)


def test_times_beyond_the_supported_range_are_rejected() -> None:
    with pytest.raises(ValueError, match="out of range"):
        TimeSums().add(2**70)
    sums = TimeSums()
    sums.add(2**62, 4)
    assert sums.total(-(2**80), 2**80) == sums.total(None, None) == 4


grid = st.builds(lambda d, o: d * DAY_US + o, st.integers(-2, 2), st.integers(-1, 6))


@settings(max_examples=300)
@given(
    st.lists(st.tuples(grid, st.one_of(st.integers(1, 6), st.just(DAY_US))), max_size=60),
    grid,
    grid,
)
def test_pair_index_with_many_pairs_per_day(raw: list[tuple[int, int]], start: int, end: int) -> None:
    """Dense days with shared ends exercise both sides of the first-day scan and ``b == end``."""
    pairs: list[tuple[int | None, int]] = [(a, a + d) for a, d in raw]
    index = PairIndex()
    for a, b in pairs:
        index.add(a, b)
    _check_pairs(index, pairs, start, end)
