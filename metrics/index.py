"""The event-time fact index: counts, sums, samples and order pairs of any ``[start, end)`` range.

Design notes: docs/architecture.md, "metrics/index.py".
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import retention_native
from retention_native import Followed, KeyTable

from metrics.day_columns import (
    COLUMNS,
    DAY_US,
    I64,
    LOW_BITS,
    NO_VALUE,
    DayRows,
    KindColumns,
    bincount,
    day_of,
    in_range,
    isin_sorted,
    joined,
    net_sorted,
    scanned,
)
from metrics.facts import Fact, Keys

FLUSH_AT = 1 << 16  # buffered fact rows: bounds the memory between two reads


class FactIndex:
    """Facts of many customers; implements :class:`metrics.kpis.FactView`."""

    def __init__(self) -> None:
        # Writes go to a compiled buffer (interned kinds and combinations, one push per fact set) and
        # reach the day columns grouped by (kind, day) on the next read: appending fact by fact in
        # Python was most of the store's CPU per event.
        self._buffer = retention_native.FactBuffer()
        self._flushing = threading.Lock()  # a store may be read in a thread (a partition given away)
        self._kinds: dict[str, KindColumns] = {}
        self._combos: list[Keys] = []
        self._members: dict[str, npt.NDArray[np.bool_]] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._cache_version = -1
        self.version = 0
        self.facts = 0  # net number of facts

    # -- writes ----------------------------------------------------------------------------------

    def combo(self, keys: Keys) -> int:
        cid: int = self._buffer.combo(keys)
        if cid >= len(self._combos):
            self._learn_combos()
        return cid

    def add(self, facts: Iterable[Fact], who: int, weight: int = 1) -> None:
        """Add (``weight=1``) or retract (``weight=-1``) facts of customer ``who``."""
        self._wrote(self._buffer.push_facts(facts if isinstance(facts, list) else list(facts), who, weight))

    def add_blob(self, blob: bytes, who: int, weight: int = 1) -> None:
        """The same for the facts of a blob (:mod:`metrics.blob`), without decoding them in Python."""
        self._wrote(self._buffer.push_blob(blob, who, weight))

    def follow(self, table: KeyTable, entries: list[Any], start: int) -> Followed:
        """Changelog entries applied by the compiled fast path (:meth:`metrics.store.KpiStore.follow`)."""
        followed = retention_native.follow(table, self._buffer, entries, start)
        if followed.applied:
            self._wrote(len(self._buffer))
        return followed

    def _wrote(self, buffered: int) -> None:
        self.version += 1
        if buffered >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Move the buffered writes into the day columns (every read does this first)."""
        if not len(self._buffer) and self._buffer.combo_count() == len(self._combos):
            return
        with self._flushing:
            drained, net = self._buffer.drain()
            self._learn_combos()
            for kind, rows in drained:
                self._kind(kind).append(DayRows.of(rows))
            self.facts += net

    def _kind(self, kind: str) -> KindColumns:
        k = self._kinds.get(kind)
        if k is None:
            k = self._kinds[kind] = KindColumns()
        return k

    def _learn_combos(self) -> None:
        new = self._buffer.combos_from(len(self._combos))
        if new:
            self._combos.extend(new)
            self._members.clear()

    # -- FactView --------------------------------------------------------------------------------

    def count(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        vec = self._vector("count", kind, start, end)
        return 0 if vec is None else int(vec[self.member(segment)[: len(vec)]].sum())

    def total(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        vec = self._vector("total", kind, start, end)
        if vec is None:
            return 0
        members = self.member(segment)[: vec.shape[1]]
        hi, lo = vec[0][members].sum(), vec[1][members].sum()
        return (int(hi) << 32) + int(lo)

    def inside(self, segment: str, kind: str, start: int, end: int) -> int:
        """Intervals ``(a, b)`` — facts at ``a`` with value ``b`` — with ``start <= a`` and ``b < end``."""
        vec = self._vector("inside", kind, start, end)
        return 0 if vec is None else int(vec[self.member(segment)[: len(vec)]].sum())

    def values(self, segment: str, kind: str, start: int | None, end: int | None) -> I64:
        """The values of the facts in ``[start, end)``, sorted."""
        self.flush()
        k = self._kinds.get(kind)
        if k is None or (start is not None and end is not None and start >= end):
            return np.zeros(0, np.int64)
        member = self.member(segment)
        value_parts, weight_parts = [], []
        for _day, (times, values, combos, _customers, weights) in self._chunks(k, start, end):
            mask = in_range(times, start, end) & member[combos]
            value_parts.append(values[mask])
            weight_parts.append(weights[mask])
        if not value_parts:
            return np.zeros(0, np.int64)
        return net_sorted(np.concatenate(value_parts), np.concatenate(weight_parts))

    def below(self, segment: str, kind: str, start: int, end: int, value: int) -> int:
        return int(np.searchsorted(self.values(segment, kind, start, end), value, side="left"))

    def nth(self, segment: str, kind: str, start: int, end: int, rank: int) -> int:
        return int(self.values(segment, kind, start, end)[rank - 1])

    def kinds(self, segment: str, prefix: str) -> set[str]:
        self.flush()
        return {kind for kind in self._kinds if kind.startswith(prefix)}

    def first(self, segment: str, kind: str) -> int | None:
        """The earliest time of a fact of ``kind`` that is still there."""
        self.flush()
        k = self._kinds.get(kind)
        if k is None or not k.days:
            return None
        k.agg.fold(len(self._combos))
        member = self.member(segment)[: k.agg.count.shape[1]]
        alive = np.flatnonzero(k.agg.count[:, member].sum(axis=1) > 0)
        if not len(alive):
            return None
        day = k.agg.row_days[int(alive[0])]  # the first day with a fact left: the answer is in it
        chunk = k.chunks[day]
        if chunk.negatives:
            # Fold retractions into what they cancel, once: every later call (the gauges ask on every
            # refresh, e.g. for the oldest ticket awaiting a reply) then reads only live facts.
            k.compact(day)
        times, _, combos, _, _ = chunk.columns()
        return int(times[self.member(segment)[combos]].min())

    def __len__(self) -> int:
        self.flush()
        return self.facts

    def nbytes(self) -> int:
        """Bytes of the fact columns as allocated (not the per-day totals or query caches)."""
        self.flush()
        return sum(k.nbytes for k in self._kinds.values())

    # -- segments and combinations ------------------------------------------------------------

    def member(self, segment: str) -> npt.NDArray[np.bool_]:
        """For each combination id: does it count for ``segment``?"""
        self.flush()
        mask = self._members.get(segment)
        if mask is None:
            mask = np.array([segment in keys for keys in self._combos] + [False], dtype=np.bool_)
            self._members[segment] = mask
        return mask

    def combos(self) -> list[Keys]:
        self.flush()
        return list(self._combos)

    # -- ABC support: per-customer columns -----------------------------------------------------

    def scan(self, kind: str, start: int | None, end: int | None) -> tuple[I64, I64, I64, I64, I64]:
        """``(time, value, combination, customer, weight)`` of every fact of ``kind`` in ``[start, end)``,
        retractions included as rows of weight -1 (sums over them are net)."""
        return scanned(self.scan_views(kind, start, end), start, end)

    def scan_views(self, kind: str, start: int | None, end: int | None) -> list[tuple[Any, ...]]:
        """The column views of the days :meth:`scan` reads: quick, and they never change (see
        :class:`metrics.day_columns.DayColumns`), so :func:`scanned` may run on another thread."""
        self.flush()
        k = self._kinds.get(kind)
        return [] if k is None else [cols for _day, cols in self._chunks(k, start, end)]

    def facts_of(self, customer: int) -> list[Fact]:
        """Every fact ``customer`` has in the index (a scan of all of it: for rare repairs)."""
        self.flush()
        out: list[Fact] = []
        for kind, k in self._kinds.items():
            for day in k.days:
                times, values, combos, customers, weights = k.chunks[day].columns()
                mask = customers == customer
                if not mask.any():
                    continue
                rows = np.stack([times[mask], values[mask], combos[mask].astype(np.int64)], axis=1)
                uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
                net = np.bincount(inverse.ravel(), weights=weights[mask], minlength=len(uniq)).round().astype(np.int64)
                for (ti, vi, ci), n in zip(uniq.tolist(), net.tolist(), strict=True):
                    fact = (ti, kind, self._combos[ci], None if vi == NO_VALUE else vi)
                    out.extend([fact] * max(n, 0))
        return out

    def subset(self, whos: I64, segment: str, of: str) -> FactIndex:
        """A new index of the facts of the customers ``whos`` that count for segment ``of``,
        relabelled as segment ``segment`` (e.g. the ``abc:A`` customers' share of ``all``)."""
        self.flush()
        out = FactIndex()
        cid = out.combo((segment,))
        member = self.member(of)
        wanted = np.sort(whos)
        for kind, k in self._kinds.items():
            for day in k.days:
                times, values, combos, customers, weights = k.chunks[day].columns()
                if not len(wanted):
                    break
                mask = member[combos] & isin_sorted(customers, wanted)
                if mask.any():
                    relabelled = np.full(int(mask.sum()), cid, np.uint16)
                    out._extend(kind, day, times=times[mask], values=values[mask], combos=relabelled,
                                customers=customers[mask], weights=weights[mask])
        out.version += 1
        return out

    def without(self, whos: I64) -> FactIndex:
        """A new index of every fact but those of the customers ``whos`` (a partition given away).

        Vectorised over each kind's columns: it runs off the event loop (in a thread) on a large store."""
        gone = np.unique(whos)
        kinds, combos, arrays = self.to_arrays()
        for i in range(len(kinds)):
            customers = arrays[f"k{i}_who"]
            keep = ~isin_sorted(customers, gone)
            day_of_row = np.repeat(np.arange(len(arrays[f"k{i}_lens"])), arrays[f"k{i}_lens"])
            arrays[f"k{i}_lens"] = np.bincount(day_of_row[keep], minlength=len(arrays[f"k{i}_lens"]))
            for col, _, _ in COLUMNS:
                arrays[f"k{i}_{col}"] = arrays[f"k{i}_{col}"][keep]
        out = FactIndex.from_arrays(kinds, combos, arrays)
        out.version = self.version + 1
        return out

    def _extend(self, kind: str, day: int, *, times: I64, values: I64, combos: npt.NDArray[np.uint16], customers: I64,
                weights: npt.NDArray[np.int8]) -> None:
        if not len(times):
            return
        one = np.array([day], np.int64)
        columns = (times.astype(np.int64), values.astype(np.int64), combos.astype(np.uint16),
                   customers.astype(np.int64), weights.astype(np.int8))  # fmt: skip
        bounds = (times.min(keepdims=True), times.max(keepdims=True), values.max(keepdims=True))
        self._kind(kind).append(DayRows(one, np.array([len(times)], np.int64), columns,
                                        np.array([(weights < 0).sum()], np.int64), bounds))  # fmt: skip
        self.facts += int(weights.astype(np.int64).sum())

    # -- checkpoints ---------------------------------------------------------------------------

    def to_arrays(self) -> tuple[list[str], list[Keys], dict[str, npt.NDArray[Any]]]:
        """Kinds, combinations and, per kind ``i``, its chunks as concatenated columns (``k{i}_…``)."""
        kinds, combos, parts = self.views()
        return kinds, combos, joined(parts)

    def views(self) -> tuple[list[str], list[Keys], dict[str, list[npt.NDArray[Any]]]]:
        """What :meth:`to_arrays` concatenates: per kind its days, chunk lengths and each chunk's column
        views. Taking them is quick; as a view never changes under its reader (appends go past it,
        compaction replaces the arrays), they may be copied on a thread while writes go on."""
        self.flush()
        kinds = list(self._kinds)
        parts: dict[str, list[npt.NDArray[Any]]] = {}
        for i, kind in enumerate(kinds):
            k = self._kinds[kind]
            chunks = [k.chunks[day] for day in k.days]
            parts[f"k{i}_days"] = [np.array(k.days, np.int64)]
            parts[f"k{i}_lens"] = [np.array([len(c) for c in chunks], np.int64)]
            columns = [c.columns() for c in chunks]
            for j, (col, _attr, dtype) in enumerate(COLUMNS):
                parts[f"k{i}_{col}"] = [cols[j] for cols in columns] or [np.zeros(0, dtype)]
        return kinds, list(self._combos), parts

    @classmethod
    def from_arrays(cls, kinds: list[str], combos: list[Keys], arrays: dict[str, npt.NDArray[Any]]) -> FactIndex:
        index = cls()
        for keys in combos:
            index.combo(keys)
        for i, kind in enumerate(kinds):
            bounds = np.concatenate([[0], np.cumsum(arrays[f"k{i}_lens"])]).tolist()
            for j, day in enumerate(arrays[f"k{i}_days"].tolist()):
                a, b = bounds[j], bounds[j + 1]
                if a < b:
                    index._extend(kind, day, **{attr: arrays[f"k{i}_{col}"][a:b] for col, attr, _ in COLUMNS})
        index.version += 1
        return index

    # -- the range machinery -------------------------------------------------------------------

    def _chunks(self, k: KindColumns, start: int | None, end: int | None) -> Iterator[tuple[int, tuple[Any, ...]]]:
        if not k.days:
            return
        first = k.days[0] if start is None else day_of(start)
        last = k.days[-1] if end is None else day_of(end - 1)
        for day in k.days_between(first, last):
            yield day, k.chunks[day].columns()

    def _vector(self, what: str, kind: str, start: int | None, end: int | None) -> Any:
        """Per-combination result of ``what`` over ``[start, end)``, cached until the next write."""
        self.flush()
        if self._cache_version != self.version:
            self._cache, self._cache_version = {}, self.version
        key = (what, kind, start, end)
        if key in self._cache:
            return self._cache[key]
        k = self._kinds.get(kind)
        result = None
        if k is not None and k.days and (start is None or end is None or start < end):
            n = len(self._combos)
            if what == "inside":
                result = self._inside(k, start, end, n)
            else:
                result = self._range(k, start, end, n, what == "total")
        self._cache[key] = result
        return result

    def _range(self, k: KindColumns, start: int | None, end: int | None, n: int, sums: bool) -> Any:
        k.agg.fold(n)
        first = k.days[0] if start is None else day_of(start)
        last = k.days[-1] if end is None else day_of(end - 1)
        # Whole days come from the aggregates; a day cut by a boundary is scanned — unless every fact of
        # the day is on one side of it (a window ending now ends after everything appended today).
        head, tail = k.chunks.get(first), k.chunks.get(last)
        cut_first = start is not None and start != first * DAY_US and head is not None and start > head.min_t
        cut_last = end is not None and end != (last + 1) * DAY_US and tail is not None and end <= tail.max_t
        whole_from = first + 1 if cut_first else first
        whole_to = last if cut_last else last + 1  # exclusive
        count = np.zeros(n, np.int64)
        hi = np.zeros(n, np.int64)
        lo = np.zeros(n, np.int64)
        if whole_from < whole_to:
            rows = k.agg.rows(whole_from, whole_to)
            count[: k.agg.count.shape[1]] += k.agg.count[rows].sum(axis=0)[:n]
            if sums:
                hi[: k.agg.hi.shape[1]] += k.agg.hi[rows].sum(axis=0)[:n]
                lo[: k.agg.lo.shape[1]] += k.agg.lo[rows].sum(axis=0)[:n]
        cut_days = {d for d, cut in ((first, cut_first), (last, cut_last)) if cut}
        for day in sorted(cut_days):
            chunk = k.chunks.get(day)
            if chunk is None or not len(chunk):
                continue
            times, values, combos, _customers, weights = chunk.columns()
            mask = in_range(times, start, end)
            combos_in, weights_in = combos[mask], weights[mask].astype(np.int64)
            count += bincount(combos_in, weights_in, n)
            if sums:
                values_in = np.where(values[mask] == NO_VALUE, 0, values[mask])
                hi += bincount(combos_in, weights_in * (values_in >> 32), n)
                lo += bincount(combos_in, weights_in * (values_in & LOW_BITS), n)
        return np.stack([hi, lo]) if sums else count

    def _inside(self, k: KindColumns, start: int | None, end: int | None, n: int) -> Any:
        # The intervals starting in [start, end), less those that end at or after ``end``; only days
        # holding such an interval are scanned (none for a window ending now).
        count: I64 = self._range(k, start, end, n, sums=False)
        if end is None:
            return count
        first = k.days[0] if start is None else day_of(start)
        for day in k.days_between(first, day_of(end - 1)):
            chunk = k.chunks[day]
            if chunk.max_v < end:
                continue
            times, values, combos, _customers, weights = chunk.columns()
            mask = in_range(times, start, end) & (values >= end)
            count -= bincount(combos[mask], weights[mask].astype(np.int64), n)
        return count


def build(facts: Iterable[Fact], who: int = 0) -> FactIndex:
    """An index of a fixed set of facts (replays, tests, ad-hoc segments)."""
    index = FactIndex()
    index.add(facts, who)
    return index
