"""Copies of the fact columns a long question reads, taken at one instant.

A cohort table or a CLV ranking reads every lifecycle and order fact, then spends most of its time in
numpy sorts and searches. Taking the copies is quick and happens where the index is written (the event
loop); answering from them touches no shared state, so it may run on another thread while the loop goes
on, and it still sees one state of the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from metrics.index import FactIndex

I64 = npt.NDArray[np.int64]
Read = tuple[str, int | None, int | None]  # kind, start, end of a scan


class Scans(Protocol):
    """What a long question reads: a kind's facts in a range, and the combinations of a segment."""

    def scan(self, kind: str, start: int | None, end: int | None) -> tuple[I64, I64, I64, I64, I64]: ...

    def member(self, segment: str) -> npt.NDArray[np.bool_]: ...


class Frozen:
    """The scans ``reads`` and the segment masks of ``segments`` of ``index``, copied now; asking for
    anything else is a :class:`KeyError` (a read the question's ``reads`` did not list)."""

    def __init__(self, index: FactIndex, reads: Iterable[Read], segments: Iterable[str] = ()) -> None:
        self._scans = {read: index.scan(*read) for read in reads}
        self._members = {segment: index.member(segment).copy() for segment in segments}

    def scan(self, kind: str, start: int | None, end: int | None) -> tuple[I64, I64, I64, I64, I64]:
        return self._scans[(kind, start, end)]

    def member(self, segment: str) -> npt.NDArray[np.bool_]:
        return self._members[segment]
