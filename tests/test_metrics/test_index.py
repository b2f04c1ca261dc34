"""The columnar fact index agrees with brute force over a multiset of weighted facts: across day
boundaries, with negative and huge times and values, retractions, and segment combinations, whether
facts are written as tuples or as blobs (both go through the compiled write buffer)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.blob import encode
from metrics.day_columns import DAY_US, day_of
from metrics.facts import Fact
from metrics.index import FactIndex, build
from metrics.ranking import by_customer

KINDS = ("order", "pair")
COMBOS: tuple[tuple[str, ...], ...] = (("all", "plan:pro"), ("all", "plan:free"), ("plan:pro",), ("all",))
SEGMENTS = ("all", "plan:pro", "plan:free", "region:eu")

days = st.integers(-3, 3)
times = st.one_of(
    days.map(lambda d: d * DAY_US),  # exactly on a day boundary
    st.builds(lambda d, o: d * DAY_US + o, days, st.integers(-2, 2)),  # just around one
    st.integers(-4 * DAY_US, 4 * DAY_US),
    st.sampled_from([-(2**62), 2**62, -(2**62) + 1, 2**62 - 1]),
)
values = st.one_of(st.none(), st.integers(-3, 3), st.integers(-(10**18), 10**18))
facts = st.tuples(times, st.sampled_from(KINDS), st.sampled_from(COMBOS), values)
bounds = st.one_of(st.none(), times)


def _in(t: int, start: int | None, end: int | None) -> bool:
    return (start is None or start <= t) and (end is None or t < end)


def _alive(items: Counter[tuple[Fact, int]], kind: str, segment: str) -> list[tuple[Fact, int]]:
    return [(f, who) for (f, who), n in items.items() for _ in range(n) if f[1] == kind and segment in f[2]]


def _check(index: FactIndex, items: Counter[tuple[Fact, int]], start: int | None, end: int | None) -> None:
    for kind in KINDS:
        for segment in SEGMENTS:
            chosen = [f for f, _ in _alive(items, kind, segment) if _in(f[0], start, end)]
            assert index.count(segment, kind, start, end) == len(chosen)
            assert index.total(segment, kind, start, end) == sum(v or 0 for *_, v in chosen)
            assert index.values(segment, kind, start, end).tolist() == sorted(v if v is not None else -(2**63)
                                                                     for *_, v in chosen)
            if start is not None and end is not None:
                # an interval (a, b) is a fact at a with value b (a missing value ends before anything)
                inside = [f for f, _ in _alive(items, kind, segment)
                          if _in(f[0], start, end) and (f[3] is None or f[3] < end)]
                assert index.inside(segment, kind, start, end) == len(inside)
            alive = [f[0] for f, _ in _alive(items, kind, segment)]
            assert index.first(segment, kind) == (min(alive) if alive else None)


def _write(index: FactIndex, written: list[Fact], who: int, weight: int, as_blob: bool) -> None:
    if as_blob:
        index.add_blob(encode(written), who, weight)
    else:
        index.add(written, who, weight)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_index_matches_brute_force(data: st.DataObject) -> None:
    index, items = FactIndex(), Counter[tuple[Fact, int]]()
    for _ in range(data.draw(st.integers(0, 60))):
        who = data.draw(st.integers(0, 3))
        as_blob = data.draw(st.booleans())
        if items and data.draw(st.booleans()):
            fact, who = data.draw(st.sampled_from(sorted(items, key=repr)))
            _write(index, [fact], who, -1, as_blob)  # a retraction is only ever of a fact that is there
            items[(fact, who)] -= 1
            items += Counter()  # drop zeros
        else:
            written = data.draw(st.lists(facts, min_size=0, max_size=3))
            _write(index, written, who, 1, as_blob)
            items.update((fact, who) for fact in written)
        if data.draw(st.booleans()):  # queries in between exercise the lazy folds and the cache
            _check(index, items, data.draw(bounds), data.draw(bounds))
    _check(index, items, data.draw(bounds), data.draw(bounds))
    assert len(index) == sum(items.values())
    # the byte count kept up to date on every append and compaction is what the chunks hold
    assert index.nbytes() == sum(chunk.nbytes() for k in index._kinds.values() for chunk in k.chunks.values())
    for who in range(4):
        assert Counter(index.facts_of(who)) == Counter({f: n for (f, w), n in items.items() if w == who})


def test_a_bad_blob_is_refused_and_writes_nothing() -> None:
    index = build([(5, "order", ("all",), 100)], who=1)
    good = encode([(6, "order", ("all",), 30), (7, "order", ("all",), 40)])
    with pytest.raises(ValueError, match="truncated"):
        index.add_blob(good[:-3], who=2)
    assert index.count("all", "order", None, None) == 1
    assert index.facts_of(2) == []


def test_retractions_compact_and_keep_answers() -> None:
    """Many add/retract cycles on one day compact the day's arrays; the answers stay exact."""
    index = FactIndex()
    kept: list[Fact] = [(DAY_US + i, "pending", ("all",), None) for i in range(10)]
    index.add(kept, who=1)
    for i in range(500):
        churn: Fact = (DAY_US + 100 + i, "pending", ("all",), None)
        index.add([churn], who=2)
        index.add([churn], who=2, weight=-1)
        if i % 50 == 0:
            index.flush()  # writes reach the day columns in groups: compaction must hold across them
    index.flush()
    chunk = index._kinds["pending"].chunks[1]
    assert len(chunk) < 200  # without compaction: 1010 rows
    assert index.count("all", "pending", None, None) == 10
    assert index.first("all", "pending") == DAY_US


def test_per_customer_columns_and_subset() -> None:
    index = build([(5, "order", ("all", "plan:pro"), 100), (7, "order", ("plan:pro",), 50)], who=1)
    index.add([(6, "order", ("all",), 30), (9, "order", ("all",), 30)], who=2)
    index.add([(9, "order", ("all",), 30)], who=2, weight=-1)
    index.add([(9, "order", ("all",), 30)], who=2)
    whos, weights, money = by_customer(index, "order", 10)
    assert sorted(zip(whos.tolist(), weights.tolist(), money.tolist(), strict=True)) == [
        (1, 1, 50), (1, 1, 100), (2, -1, -30), (2, 1, 30), (2, 1, 30), (2, 1, 30)]
    sub = index.subset(whos=whos[whos == 2], segment="abc:A", of="all")
    assert sub.count("abc:A", "order", None, None) == 2
    assert sub.total("abc:A", "order", None, None) == 60
    assert sub.count("all", "order", None, None) == 0


def test_day_of_floors() -> None:
    assert day_of(-1) == -1
    assert day_of(0) == 0
    assert day_of(DAY_US - 1) == 0
    assert day_of(DAY_US) == 1


def test_column_bytes_follow_the_rows_retractions_included_until_compacted() -> None:
    index = FactIndex()
    empty = index.nbytes()
    facts: list[Fact] = [(DAY_US + i, "order", ("all",), 100 + i) for i in range(40)]
    index.add(facts, who=1)
    grown = index.nbytes()
    assert grown - empty >= 40 * 27  # 27 bytes a row: time, value, customer (8 each), combination (2), weight (1)
    index.add(facts[:5], who=1, weight=-1)  # retracted: 5 more rows (too few to compact), the facts are gone
    assert len(index) == 35
    assert index.nbytes() >= grown + 5 * 27 - 64  # array growth room may already hold part of them
