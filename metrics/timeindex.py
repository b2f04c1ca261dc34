"""Exact event-time range aggregates that stay O(log n) however long the window is.

KPIs ask for counts, sums (money in micro-units, durations in µs) and exact quantiles over ``[start, end)``
with microsecond boundaries, and for windows of months or years. Bucketing into days alone would round the
boundaries; one sorted list alone makes sums over long windows linear. So items are bucketed by UTC day
``t // DAY_US`` (floor division: negative times work), each day keeps its items sorted for the exact answer
inside the boundary day, and sparse Fenwick trees over the day index hold per-day counts and sums, so a
prefix is ``fenwick(days before) + part of one day``. Everything is integer arithmetic: no float, no rounding.

Supported times: any ``t`` whose day lies within ``±2**26`` days of 1970 (that includes all of ``±2**62`` µs).
"""

from __future__ import annotations

from collections import Counter

from sortedcontainers import SortedList

DAY_US = 86_400_000_000
_SIZE = 1 << 27  # Fenwick indexes 1.._SIZE
_OFFSET = 1 << 26  # day d lives at index d + _OFFSET


def day_of(t: int) -> int:
    """The UTC day index of ``t`` (µs since the epoch); floor division, so ``-1`` is day ``-1``."""
    return t // DAY_US


def _fenwick_index(day: int) -> int:
    i = day + _OFFSET
    if not 1 <= i <= _SIZE:
        raise ValueError(f"time out of range: day {day} is beyond ±2**26 days of 1970")
    return i


class _SparseFenwick:
    """Counts and sums per day index; only the nodes that hold something are stored."""

    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[int, list[int]] = {}  # index -> [count, sum]

    def add(self, i: int, count: int, total: int) -> None:
        nodes = self._nodes
        while i <= _SIZE:
            node = nodes.get(i)
            if node is None:
                nodes[i] = [count, total]
            else:
                node[0] += count
                node[1] += total
                if node[0] == 0:  # no items below this node any more: its sum is 0 too
                    del nodes[i]
            i += i & -i

    def prefix(self, i: int) -> tuple[int, int]:
        """Count and sum of indexes ``1..i`` (``i`` is clamped to the tree)."""
        i = min(max(i, 0), _SIZE)
        nodes, count, total = self._nodes, 0, 0
        while i > 0:
            node = nodes.get(i)
            if node is not None:
                count += node[0]
                total += node[1]
            i -= i & -i
        return count, total


class TimeSums:
    """A multiset of ``(t, v)``: count, sum and values of the items with ``start <= t < end``."""

    def __init__(self) -> None:
        self._by_day: dict[int, SortedList] = {}  # day -> SortedList[(t, v)]
        self._days = SortedList()  # the keys of _by_day, for range iteration
        self._tree = _SparseFenwick()
        self._len = 0
        self._sum = 0

    def add(self, t: int, v: int = 1) -> None:
        day = day_of(t)
        i = _fenwick_index(day)
        items = self._by_day.get(day)
        if items is None:
            items = self._by_day[day] = SortedList()
            self._days.add(day)
        items.add((t, v))
        self._tree.add(i, 1, v)
        self._len += 1
        self._sum += v

    def remove(self, t: int, v: int = 1) -> None:
        day = day_of(t)
        items = self._by_day.get(day)
        if items is None or (t, v) not in items:
            raise KeyError((t, v))
        items.remove((t, v))
        if not items:
            del self._by_day[day]
            self._days.remove(day)
        self._tree.add(day + _OFFSET, -1, -v)
        self._len -= 1
        self._sum -= v

    def count(self, start: int | None, end: int | None) -> int:
        if not self._lt(start, end):
            return 0
        return (self._len if end is None else self._prefix_count(end)) - (
            0 if start is None else self._prefix_count(start)
        )

    def total(self, start: int | None, end: int | None) -> int:
        if not self._lt(start, end):
            return 0
        if start is not None and end is not None and day_of(start) == day_of(end - 1):
            return self._day_total(day_of(start), start, end)
        return (self._sum if end is None else self._prefix_total(end)) - (
            0 if start is None else self._prefix_total(start)
        )

    def values(self, start: int | None, end: int | None) -> list[int]:
        """The values of the items in ``[start, end)``, in time order."""
        if not self._lt(start, end) or not self._len:
            return []
        lo = self._days[0] if start is None else day_of(start)
        hi = self._days[-1] if end is None else day_of(end - 1)
        out: list[int] = []
        for day in self._days.irange(lo, hi):
            items = self._by_day[day]
            a = 0 if start is None or day != lo else items.bisect_left((start,))
            b = len(items) if end is None or day != hi else items.bisect_left((end,))
            out.extend(v for _, v in items.islice(a, b))
        return out

    def first(self) -> int | None:
        """The smallest ``t``, or ``None`` when empty."""
        if not self._len:
            return None
        t: int = self._by_day[self._days[0]][0][0]
        return t

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    @staticmethod
    def _lt(start: int | None, end: int | None) -> bool:
        return start is None or end is None or start < end

    def _prefix_count(self, t: int) -> int:
        """Number of items with time ``< t``."""
        day = day_of(t)
        count, _ = self._tree.prefix(day - 1 + _OFFSET)
        items = self._by_day.get(day)
        return count + (items.bisect_left((t,)) if items else 0)

    def _prefix_total(self, t: int) -> int:
        """Sum of the values of the items with time ``< t``."""
        day = day_of(t)
        _, total = self._tree.prefix(day - 1 + _OFFSET)
        return total + self._day_total(day, None, t)

    def _day_total(self, day: int, start: int | None, end: int) -> int:
        """Sum of one day's values in ``[start, end)``, scanning the shorter side of the day."""
        items = self._by_day.get(day)
        if not items:
            return 0
        a = 0 if start is None else items.bisect_left((start,))
        b = items.bisect_left((end,))
        if start is None and 2 * b > len(items):  # the rest of the day is shorter: day total minus it
            whole = self._tree.prefix(day + _OFFSET)[1] - self._tree.prefix(day - 1 + _OFFSET)[1]
            rest: int = sum(v for _, v in items.islice(b, None))
            return whole - rest
        part: int = sum(v for _, v in items.islice(a, b))
        return part


class PairIndex:
    """A multiset of intervals ``(a, b)``, ``a < b``; counts those inside ``[start, end)``.

    ``a = None`` means "since forever" (below any real time): such a pair is never inside a window, so it is
    only kept for the multiset bookkeeping.
    """

    def __init__(self) -> None:
        self._ends: dict[int, SortedList] = {}  # day of a -> SortedList[b]
        self._pairs: dict[int, SortedList] = {}  # day of a -> SortedList[(a, b)]
        self._days = SortedList()  # the keys of the dicts above
        self._open: Counter[int] = Counter()  # b of the pairs with a = None
        self._len = 0

    def add(self, a: int | None, b: int) -> None:
        if a is not None and a > b:  # a == b: two orders of a customer at the same instant
            raise ValueError(f"reversed interval ({a}, {b})")
        self._len += 1
        if a is None:
            self._open[b] += 1
            return
        day = day_of(a)
        if day not in self._pairs:
            self._ends[day], self._pairs[day] = SortedList(), SortedList()
            self._days.add(day)
        self._ends[day].add(b)
        self._pairs[day].add((a, b))

    def remove(self, a: int | None, b: int) -> None:
        if a is None:
            if not self._open[b]:
                raise KeyError((a, b))
            self._open[b] -= 1
            if not self._open[b]:
                del self._open[b]
        else:
            self._remove_closed(a, b)
        self._len -= 1

    def inside(self, start: int, end: int) -> int:
        """Number of pairs with ``start <= a`` and ``b < end``."""
        if start >= end:
            return 0
        first, n = day_of(start), 0
        for day in self._days.irange(first, day_of(end - 1)):
            n += self._first_day(day, start, end) if day == first else self._ends[day].bisect_left(end)
        return n

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def _first_day(self, day: int, start: int, end: int) -> int:
        """Pairs of ``day`` with ``start <= a`` and ``b < end``, scanning the shorter side of ``start``."""
        pairs = self._pairs[day]
        k = pairs.bisect_left((start,))
        if 2 * k <= len(pairs):  # all pairs ending before ``end`` minus those starting before ``start``
            return int(self._ends[day].bisect_left(end)) - sum(1 for _, b in pairs.islice(0, k) if b < end)
        return sum(1 for _, b in pairs.islice(k, None) if b < end)

    def _remove_closed(self, a: int, b: int) -> None:
        day = day_of(a)
        pairs = self._pairs.get(day)
        if pairs is None or (a, b) not in pairs:
            raise KeyError((a, b))
        pairs.remove((a, b))
        self._ends[day].remove(b)
        if not pairs:
            del self._pairs[day], self._ends[day]
            self._days.remove(day)
