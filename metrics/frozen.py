"""The fact columns a long question reads, taken at one instant.

A cohort table or a CLV ranking reads every lifecycle and order fact, then spends most of its time in
numpy sorts and searches. Taking the columns' views is quick and happens where the index is written (the
event loop); as a view never changes, joining them and answering touches no shared state, so it may run
on another thread while the loop goes on, and it still sees one state of the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from metrics.day_columns import net_sorted, scanned
from metrics.index import FactIndex

I64 = npt.NDArray[np.int64]
Read = tuple[str, int | None, int | None]  # kind, start, end of a scan


class Scans(Protocol):
    """What a long question reads: a kind's facts in a range, and the combinations of a segment."""

    def scan(self, kind: str, start: int | None, end: int | None) -> tuple[I64, I64, I64, I64, I64]: ...

    def member(self, segment: str) -> npt.NDArray[np.bool_]: ...


class Frozen:
    """The scans ``reads`` and the segment masks of ``segments`` of ``index`` as they are now (views and
    copies); asking for anything else is a :class:`KeyError` (a read the question's ``reads`` did not list)."""

    def __init__(self, index: FactIndex, reads: Iterable[Read], segments: Iterable[str] = ()) -> None:
        self._views = {read: index.scan_views(*read) for read in reads}
        self._scans: dict[Read, tuple[I64, I64, I64, I64, I64]] = {}
        self._members = {segment: index.member(segment).copy() for segment in segments}

    def scan(self, kind: str, start: int | None, end: int | None) -> tuple[I64, I64, I64, I64, I64]:
        read = (kind, start, end)
        if read not in self._scans:  # joined where it is asked: on the thread
            self._scans[read] = scanned(self._views[read], start, end)
        return self._scans[read]

    def member(self, segment: str) -> npt.NDArray[np.bool_]:
        return self._members[segment]


def sorted_values(scans: Scans, segment: str, kind: str, start: int | None, end: int | None) -> I64:
    """:meth:`metrics.index.FactIndex.values` from a scan: the values in ``[start, end)`` of ``segment``."""
    _t, values, combos, _who, weights = scans.scan(kind, start, end)
    mask = scans.member(segment)[combos]
    return net_sorted(values[mask], weights[mask])
