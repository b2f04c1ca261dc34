"""An exact event-time index of lifecycle contributions: counts in any ``[start, end)`` in O(log n).

One sorted list of timestamps per ``(segment, kind)``. Counting is a pair of bisections, so periods
with second (even microsecond) precision cost the same as calendar months, and nothing is bucketed
away: the KPI query and the gauges read the same numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Protocol

from sortedcontainers import SortedList

from metrics.lifecycle import Contribution


class CountView(Protocol):
    """Anything that can count contributions of a kind in a segment within ``[start_us, end_us)``."""

    def count(self, segment: str, kind: str, start_us: int | None, end_us: int | None) -> int: ...

    def kinds(self, segment: str, prefix: str) -> set[str]: ...


class LifecycleIndex:
    """Contribution timestamps of the customers of one partition (or of a whole replay)."""

    def __init__(self) -> None:
        self._lists: dict[tuple[str, str], SortedList] = {}
        self.newest_us: int | None = None

    def apply(self, removed: Counter[Contribution], added: Counter[Contribution]) -> None:
        for (t, kind, segment), n in removed.items():
            lst = self._lists[(segment, kind)]
            for _ in range(n):
                lst.remove(t)
        for (t, kind, segment), n in added.items():
            lst = self._lists.get((segment, kind))
            if lst is None:
                lst = self._lists[(segment, kind)] = SortedList()
            for _ in range(n):
                lst.add(t)

    def observe(self, time_us: int) -> None:
        """Remember the newest event time seen (the watermark for lateness and the event clock)."""
        if self.newest_us is None or time_us > self.newest_us:
            self.newest_us = time_us

    def count(self, segment: str, kind: str, start_us: int | None, end_us: int | None) -> int:
        lst = self._lists.get((segment, kind))
        if not lst:
            return 0
        hi = len(lst) if end_us is None else lst.bisect_left(end_us)
        lo = 0 if start_us is None else lst.bisect_left(start_us)
        return max(hi - lo, 0)

    def kinds(self, segment: str, prefix: str) -> set[str]:
        return {k for (s, k), lst in self._lists.items() if s == segment and k.startswith(prefix) and lst}

    def __len__(self) -> int:
        return sum(len(lst) for lst in self._lists.values())


class CombinedView:
    """Sums several indexes (the partitions a worker owns) as one."""

    def __init__(self, parts: Sequence[CountView]) -> None:
        self.parts = parts

    def count(self, segment: str, kind: str, start_us: int | None, end_us: int | None) -> int:
        return sum(p.count(segment, kind, start_us, end_us) for p in self.parts)

    def kinds(self, segment: str, prefix: str) -> set[str]:
        out: set[str] = set()
        for p in self.parts:
            out |= p.kinds(segment, prefix)
        return out


def build(contributions: Iterable[Contribution]) -> LifecycleIndex:
    """An index of a fixed set of contributions (replays, tests, backfills)."""
    index = LifecycleIndex()
    index.apply(Counter(), Counter(contributions))
    return index
