"""The event-time fact index: counts, sums, samples and order pairs of any ``[start, end)`` range.

One :class:`~metrics.timeindex.TimeSums` per ``(segment, kind)``, and a
:class:`~metrics.timeindex.PairIndex` for the order-pair kinds that give exact repeat-purchase
counts. Ranges are exact to the microsecond, so the KPI query and the gauges read the same numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from metrics.facts import ORDER_PAIR1, ORDER_PAIR2, Fact
from metrics.timeindex import PairIndex, TimeSums

PAIR_KINDS = frozenset([ORDER_PAIR1, ORDER_PAIR2])


class FactIndex:
    """Facts of many keys; implements :class:`metrics.kpis.FactView`."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str], TimeSums] = {}
        self._pairs: dict[tuple[str, str], PairIndex] = {}

    def apply(self, removed: Counter[Fact], added: Counter[Fact]) -> None:
        for (t, kind, segment, value), n in removed.items():
            for _ in range(n):
                self._remove(t, kind, segment, value)
        for (t, kind, segment, value), n in added.items():
            for _ in range(n):
                self._add(t, kind, segment, value)

    def _add(self, t: int, kind: str, segment: str, value: int | None) -> None:
        if kind in PAIR_KINDS:
            pairs = self._pairs.get((segment, kind))
            if pairs is None:
                pairs = self._pairs[(segment, kind)] = PairIndex()
            pairs.add(value, t)
            return
        sums = self._sums.get((segment, kind))
        if sums is None:
            sums = self._sums[(segment, kind)] = TimeSums()
        sums.add(t, 1 if value is None else value)

    def _remove(self, t: int, kind: str, segment: str, value: int | None) -> None:
        if kind in PAIR_KINDS:
            self._pairs[(segment, kind)].remove(value, t)
            return
        self._sums[(segment, kind)].remove(t, 1 if value is None else value)

    # -- FactView --------------------------------------------------------------------------------

    def count(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        sums = self._sums.get((segment, kind))
        return sums.count(start, end) if sums else 0

    def total(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        sums = self._sums.get((segment, kind))
        return sums.total(start, end) if sums else 0

    def values(self, segment: str, kind: str, start: int | None, end: int | None) -> list[int]:
        sums = self._sums.get((segment, kind))
        return sums.values(start, end) if sums else []

    def inside(self, segment: str, kind: str, start: int, end: int) -> int:
        pairs = self._pairs.get((segment, kind))
        return pairs.inside(start, end) if pairs else 0

    def kinds(self, segment: str, prefix: str) -> set[str]:
        return {k for (s, k), sums in self._sums.items() if s == segment and k.startswith(prefix) and sums}

    def first(self, segment: str, kind: str) -> int | None:
        sums = self._sums.get((segment, kind))
        return sums.first() if sums else None

    def __len__(self) -> int:
        return sum(len(s) for s in self._sums.values()) + sum(len(p) for p in self._pairs.values())


def build(facts: Iterable[Fact]) -> FactIndex:
    """An index of a fixed set of facts (replays, tests, ad-hoc segments)."""
    index = FactIndex()
    index.apply(Counter(), Counter(facts))
    return index
