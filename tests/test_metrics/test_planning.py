"""Order statistics and ABC cut points found across several stores equal those of one store holding all,
also when the value ranges must be narrowed many times and customers tie on CLV."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics import planning
from metrics.abc_classes import CLASSES, class_codes, classify_arrays, summarize_arrays
from metrics.planning import abc, run, select
from metrics.questions import ask_all


class ArraySource:
    """A store reduced to what order statistics and ABC read: one kind's values and customers' CLV."""

    def __init__(self, values: list[int], customers: list[tuple[int, int]]) -> None:
        self.values = np.sort(np.array(values, np.int64))
        self.who = np.array([w for w, _ in customers], np.int64)
        self.clv = np.array([c for _, c in customers], np.int64)

    def sorted_values(self, segment: str, kind: str, start: int, end: int) -> Any:
        return self.values

    def clv_ranking(self, at_us: int) -> tuple[Any, Any]:
        order = np.lexsort((self.who, -self.clv))
        order = order[self.clv[order] > 0]
        return self.clv[order], self.who[order]

    def nonpositive_customers(self, at_us: int) -> int:
        return int((self.clv <= 0).sum())


def split(items: list[Any], shares: list[int]) -> list[list[Any]]:
    return [[x for x, s in zip(items, shares, strict=True) if s == i] for i in range(3)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-(2**40), 2**40) | st.sampled_from([0, 7, 7, 7, 2**62]), min_size=1, max_size=60),
       st.data())
def test_nth_across_stores_is_the_nth_of_all_values(values: list[int], data: st.DataObject) -> None:
    for bins, few in ((256, 4096), (2, 1), (3, 2)):
        planning.BINS, planning.FEW = bins, few
        try:
            shares = data.draw(st.lists(st.integers(0, 2), min_size=len(values), max_size=len(values)))
            sources = [ArraySource(part, []) for part in split(values, shares)]
            ranks = sorted({1, len(values), data.draw(st.integers(1, len(values)))})
            questions = [("nth", "all", "k", 0, 1, r) for r in ranks]
            found = run(select(questions), lambda qs, srcs=sources: ask_all(srcs, qs))  # type: ignore[misc]
            assert found == [sorted(values)[r - 1] for r in ranks]
        finally:
            planning.BINS, planning.FEW = 256, 4096


customers = st.lists(st.tuples(st.integers(1, 2**62), st.sampled_from([-5, 0, 1, 2, 2, 2, 3, 10, 10, 1000, 2**40])),
                     min_size=1, max_size=60, unique_by=lambda c: c[0])


@settings(max_examples=150, deadline=None)
@given(customers, st.data(), st.sampled_from([(0.8, 0.95), (0.5, 1.0), (0.01, 0.02), (0.3333, 0.6667)]))
def test_abc_across_stores_classifies_as_one_store(people: list[tuple[int, int]], data: st.DataObject,
                                                   thresholds: tuple[float, float]) -> None:
    who = np.array([w for w, _ in people], np.int64)
    clv = np.array([c for _, c in people], np.int64)
    expected = classify_arrays(who, clv, thresholds)
    for bins, few in ((256, 4096), (2, 1)):
        planning.BINS, planning.FEW = bins, few
        try:
            shares = data.draw(st.lists(st.integers(0, 2), min_size=len(people), max_size=len(people)))
            sources = [ArraySource([], part) for part in split(people, shares)]
            cuts, summary = run(abc(0, thresholds), lambda qs, srcs=sources: ask_all(srcs, qs))  # type: ignore[misc]
            got = np.where(clv > 0, class_codes(clv, who, cuts), 2)
            assert got.tolist() == expected.tolist()
            want = summarize_arrays(clv, expected)
            assert summary == want
        finally:
            planning.BINS, planning.FEW = 256, 4096


def test_abc_of_nobody_is_all_empty() -> None:
    cuts, summary = run(abc(0, (0.8, 0.95)), lambda qs: ask_all([ArraySource([], [(1, 0)])], qs))  # type: ignore[list-item]
    assert cuts == [None, None]
    assert summary.customers == dict.fromkeys(CLASSES, 0) | {"C": 1}
    assert summary.total_clv == 0
