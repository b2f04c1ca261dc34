"""A kind's facts by UTC day: columns of the day's facts and per-day totals, the parts of
:class:`metrics.index.FactIndex`.

Writes append to the columns and queue an aggregate write; a query folds the queue into per-day
totals (a numpy matrix day by segment combination), so whole days cost a row sum and only a day cut
by a range boundary is scanned.
"""

from __future__ import annotations

import bisect
from array import array
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

DAY_US = 86_400_000_000
NO_VALUE = -(2**63)  # a fact without a value (an order pair with no previous order)
FOLD_AT = 1 << 16  # pending aggregate writes of a kind
LOW_BITS = 0xFFFFFFFF

I64 = npt.NDArray[np.int64]
# The columns of a day's facts: name in a checkpoint file, attribute, dtype.
COLUMNS = (("t", "times", np.int64), ("v", "values", np.int64), ("c", "combos", np.uint16),
           ("who", "customers", np.int64), ("w", "weights", np.int8))
ROW_BYTES = sum(np.dtype(dtype).itemsize for _, _, dtype in COLUMNS)  # every column has a slot per row


def day_of(t: int) -> int:
    """The UTC day index of ``t`` (µs since the epoch); floor division, so ``-1`` is day ``-1``."""
    return t // DAY_US


def in_range(t: I64, start: int | None, end: int | None) -> npt.NDArray[np.bool_]:
    """Which of the times ``t`` are in ``[start, end)`` (an open end when ``None``)."""
    mask = np.ones(len(t), np.bool_)
    if start is not None:
        mask &= t >= start
    if end is not None:
        mask &= t < end
    return mask


def bincount(c: npt.NDArray[Any], weights: I64, n: int) -> I64:
    """Exact integer sums of ``weights`` per combination (float64 is exact below 2**53)."""
    if not len(c):
        return np.zeros(n, np.int64)
    return np.rint(np.bincount(c, weights=weights, minlength=n)[:n]).astype(np.int64)


def isin_sorted(values: I64, sorted_unique: I64) -> npt.NDArray[np.bool_]:
    """``np.isin`` for a sorted array of unique values, without hashing either side."""
    if not len(sorted_unique):
        return np.zeros(len(values), np.bool_)
    at = np.minimum(np.searchsorted(sorted_unique, values), len(sorted_unique) - 1)
    found: npt.NDArray[np.bool_] = sorted_unique[at] == values
    return found


def joined(parts: dict[str, list[npt.NDArray[Any]]]) -> dict[str, npt.NDArray[Any]]:
    """Named lists of columns (:meth:`metrics.index.FactIndex.views`) as one array per name."""
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def net_sorted(values: I64, weights: npt.NDArray[Any]) -> I64:
    """``values`` sorted, each as often as its net weight (a retraction cancels an equal value)."""
    if (weights > 0).all():
        return np.sort(values)
    uniq, inverse = np.unique(values, return_inverse=True)
    net = np.bincount(inverse, weights=weights, minlength=len(uniq)).round().astype(np.int64)
    return np.repeat(uniq, np.maximum(net, 0))


def scanned(days: list[tuple[Any, ...]], start: int | None, end: int | None) -> tuple[I64, I64, I64, I64, I64]:
    """The rows of the days' columns in ``[start, end)``, joined, each column as int64."""
    parts = [[col[mask] for col in cols] for cols in days if (mask := in_range(cols[0], start, end)).any()]
    t, v, c, who, w = (np.concatenate([p[i] for p in parts]).astype(np.int64) if parts else np.zeros(0, np.int64)
                       for i in range(5))
    return t, v, c, who, w


class DayColumns:
    """The facts of one kind on one UTC day, as parallel numpy arrays with room to grow.

    Reads get views of the filled rows, not copies: an append writes only past them (or into new, larger
    arrays), and :meth:`compact` replaces the arrays, so a view taken earlier never changes under its
    reader — not even one on another thread (:mod:`metrics.frozen`).
    """

    __slots__ = ("_cols", "max_t", "max_v", "min_t", "n", "negatives")

    def __init__(self) -> None:
        self._cols: list[npt.NDArray[Any]] = [np.zeros(0, dtype) for _, _, dtype in COLUMNS]
        self.n = 0
        self.negatives = 0
        # bounds of everything ever appended: a window boundary outside them does not cut the day
        self.min_t = self.max_t = self.max_v = NO_VALUE

    def bound(self, t: int, v: int) -> None:
        if self.min_t == NO_VALUE or t < self.min_t:
            self.min_t = t
        self.max_t = max(self.max_t, t)
        self.max_v = max(self.max_v, v)

    def __len__(self) -> int:
        return self.n

    def nbytes(self) -> int:
        """Bytes the columns hold allocated (rows, retracted ones until compacted, and growth room)."""
        return len(self._cols[0]) * ROW_BYTES

    def extend(self, columns: tuple[npt.NDArray[Any], ...]) -> int:
        """Append rows given as one array for each of ``COLUMNS``; returns the bytes the columns grew by."""
        end = self.n + len(columns[0])
        grew = 0
        if end > len(self._cols[0]):  # grow by an eighth, as Python's arrays do
            room = max(end, len(self._cols[0]) + (len(self._cols[0]) >> 3) + 8)
            grew = (room - len(self._cols[0])) * ROW_BYTES
            self._cols = [_grown(column, self.n, room) for column in self._cols]
        for column, rows in zip(self._cols, columns, strict=True):
            column[self.n:end] = rows
        self.n = end
        return grew

    def columns(self) -> tuple[I64, I64, npt.NDArray[np.uint16], I64, npt.NDArray[np.int8]]:
        times, values, combos, customers, weights = (column[: self.n] for column in self._cols)
        return times, values, combos, customers, weights

    def compact(self) -> None:
        """Drop facts cancelled by a later retraction (identical fact, weight -1)."""
        times, values, combos, customers, weights = self.columns()
        order = np.lexsort((customers, combos, values, times))
        times, values, combos = times[order], values[order], combos[order]
        customers, weights = customers[order], weights[order]
        changed = ((times[1:] != times[:-1]) | (values[1:] != values[:-1]) | (combos[1:] != combos[:-1])
                   | (customers[1:] != customers[:-1]))
        starts = np.flatnonzero(np.r_[True, changed])
        net = np.add.reduceat(weights.astype(np.int64), starts) if len(times) else np.zeros(0, np.int64)
        keep = np.repeat(starts, np.maximum(net, 0))
        self._cols = [times[keep], values[keep], combos[keep], customers[keep], np.ones(len(keep), np.int8)]
        self.n = len(keep)
        self.negatives = 0


def _grown(column: npt.NDArray[Any], filled: int, room: int) -> npt.NDArray[Any]:
    grown = np.empty(room, column.dtype)
    grown[:filled] = column[:filled]
    return grown


class DayTotals:
    """Per day that has facts, and per combination: net count and the two 32-bit halves of the net
    value sum. Rows follow the sorted days (not a dense calendar: one event in year 9999 costs a row)."""

    def __init__(self) -> None:
        self.row_days: list[int] = []
        self.count = np.zeros((0, 0), np.int64)
        self.hi = np.zeros((0, 0), np.int64)
        self.lo = np.zeros((0, 0), np.int64)
        # writes not folded in yet: day, combination, weight, value
        self.pending_days = array("q")
        self.pending_combos = array("H")
        self.pending_weights = array("b")
        self.pending_values = array("q")

    def queue(self, days: I64, combos: npt.NDArray[np.uint16], weights: npt.NDArray[np.int8], values: I64) -> None:
        """Queue the writes of facts (their day, combination, weight and value) for the next fold."""
        self.pending_days.frombytes(days.tobytes())
        self.pending_combos.frombytes(combos.tobytes())
        self.pending_weights.frombytes(weights.tobytes())
        self.pending_values.frombytes(values.tobytes())
        if len(self.pending_days) >= FOLD_AT:  # queries fold too; this bounds the memory between them
            self.fold(0)

    def fold(self, combos: int) -> None:
        if not self.pending_days and self.count.shape[1] >= combos:
            return
        days = np.array(self.pending_days, dtype=np.int64)
        if self.pending_combos:  # a fold between queries does not know how many combinations the index has
            combos = max(combos, max(self.pending_combos) + 1)
        self._fit(days, combos)
        if len(days):
            rows = np.searchsorted(np.array(self.row_days, dtype=np.int64), days)
            cols = np.array(self.pending_combos, dtype=np.int64)
            weights = np.array(self.pending_weights, dtype=np.int64)
            values = np.array(self.pending_values, dtype=np.int64)
            values = np.where(values == NO_VALUE, 0, values)
            np.add.at(self.count, (rows, cols), weights)
            np.add.at(self.hi, (rows, cols), weights * (values >> 32))
            np.add.at(self.lo, (rows, cols), weights * (values & LOW_BITS))
        self.pending_days, self.pending_combos = array("q"), array("H")
        self.pending_weights, self.pending_values = array("b"), array("q")

    def _fit(self, days: I64, combos: int) -> None:
        new_days = set(np.unique(days).tolist()).difference(self.row_days)
        cols = max(combos, self.count.shape[1])
        if not new_days and cols == self.count.shape[1]:
            return
        merged = sorted(new_days.union(self.row_days))
        where = np.searchsorted(np.array(merged, dtype=np.int64), np.array(self.row_days, dtype=np.int64))
        for name in ("count", "hi", "lo"):
            old = getattr(self, name)
            grown = np.zeros((len(merged), cols), np.int64)
            grown[where, : old.shape[1]] = old
            setattr(self, name, grown)
        self.row_days = merged

    def rows(self, first_day: int, end_day: int) -> slice:
        """Rows of days ``first_day <= d < end_day``."""
        return slice(bisect.bisect_left(self.row_days, first_day), bisect.bisect_left(self.row_days, end_day))


class DayRows(NamedTuple):
    """Facts of one kind on some days, one day after another: ``ends[i]`` is where the rows of day
    ``days[i]`` end in ``columns`` (one array for each of ``COLUMNS``); per day, how many rows are
    retractions and ``(min time, max time, max value)``."""

    days: I64
    ends: I64
    columns: tuple[I64, I64, npt.NDArray[np.uint16], I64, npt.NDArray[np.int8]]
    negatives: I64
    bounds: tuple[I64, I64, I64]

    @classmethod
    def of(cls, raw: tuple[bytes, bytes, tuple[bytes, ...], bytes, tuple[bytes, ...]]) -> DayRows:
        """From the bytes the fact buffer drains (int64s, but combinations uint16 and weights int8)."""
        days, ends, columns, negatives, bounds = raw
        t, v, c, who, w = (np.frombuffer(b, dtype) for b, (_, _, dtype) in zip(columns, COLUMNS, strict=True))
        lo, hi, top = (np.frombuffer(b, np.int64) for b in bounds)
        return cls(np.frombuffer(days, np.int64), np.frombuffer(ends, np.int64), (t, v, c, who, w),
                   np.frombuffer(negatives, np.int64), (lo, hi, top))  # fmt: skip


class KindColumns:
    """Every fact of one kind: chunks by day plus their aggregates."""

    def __init__(self) -> None:
        self.chunks: dict[int, DayColumns] = {}
        self.days: list[int] = []  # sorted keys of chunks
        self.agg = DayTotals()
        self.nbytes = 0  # what the chunks' columns hold allocated, kept up to date (a scrape reads it)

    def chunk(self, day: int) -> DayColumns:
        chunk = self.chunks.get(day)
        if chunk is None:
            chunk = self.chunks[day] = DayColumns()
            bisect.insort(self.days, day)
        return chunk

    def append(self, rows: DayRows) -> None:
        """Append the facts of some days."""
        days, ends, columns, negatives, bounds = rows
        start = 0
        per_day = zip(days.tolist(), ends.tolist(), negatives.tolist(), *(b.tolist() for b in bounds), strict=True)
        for day, end, retracted, min_t, max_t, max_v in per_day:
            chunk = self.chunk(day)
            chunk.bound(min_t, max_v)
            chunk.bound(max_t, max_v)
            self.nbytes += chunk.extend(tuple(column[start:end] for column in columns))
            chunk.negatives += retracted
            if retracted and chunk.negatives * 8 > len(chunk) and len(chunk) > 48:
                self.compact(day)  # retractions are an eighth of the day: fold them into what they cancel
            start = end
        _times, values, combos, _customers, weights = columns
        self.agg.queue(np.repeat(days, np.diff(ends, prepend=0)), combos, weights, values)

    def compact(self, day: int) -> None:
        chunk = self.chunks[day]
        held = chunk.nbytes()
        chunk.compact()
        self.nbytes += chunk.nbytes() - held

    def days_between(self, first: int, last: int) -> list[int]:
        """Days with facts, ``first <= d <= last``."""
        return self.days[bisect.bisect_left(self.days, first):bisect.bisect_right(self.days, last)]
