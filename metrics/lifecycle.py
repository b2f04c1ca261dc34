"""Per-customer lifecycle: the stored records and the transitions they imply (pure, no Faust).

The records of one customer are kept sorted by event time; the effective transitions are a pure
function of that *set* of records (see :func:`derive`). Whatever the arrival order, and however
often an event is redelivered, the same set gives the same transitions, hence the same KPIs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

import msgspec

from metrics.segments import Segmenter, label


class Kind(IntEnum):
    """Lifecycle record kinds; the value also orders records that share a timestamp."""

    SIGNED_UP = 0
    UPDATED = 1
    CHURNED = 2
    REACTIVATED = 3


class Record(msgspec.Struct, array_like=True, frozen=True):
    """One lifecycle event as stored in the customer's state (compact: encoded as an array)."""

    time_us: int
    kind: Kind
    id: str
    reason: str | None = None
    segment: dict[str, str] | None = None

    def sort_key(self) -> tuple[int, int, str]:
        return (self.time_us, int(self.kind), self.id)


# Contribution kinds: how one transition changes the active customers and the lost pool of a segment.
NEW = "new"
LOST = "lost"
REACTIVATED = "reactivated"
MOVED_IN = "moved_in"
MOVED_OUT = "moved_out"
LOST_MOVED_IN = "lost_moved_in"
LOST_MOVED_OUT = "lost_moved_out"
LOST_REASON = "lost_reason:"
ACTIVE_UP = (NEW, REACTIVATED, MOVED_IN)
ACTIVE_DOWN = (LOST, MOVED_OUT)
POOL_UP = (LOST, LOST_MOVED_IN)
POOL_DOWN = (REACTIVATED, LOST_MOVED_OUT)

Contribution = tuple[int, str, str]
"""``(time_us, kind, segment_key)``; a churn also yields ``(time_us, "lost_reason:<reason>", segment)``."""


@dataclass(frozen=True)
class Derived:
    """Effective transitions of one customer, and why the other records changed nothing."""

    contributions: list[Contribution]
    ignored: dict[str, str]


def insert(records: list[Record], record: Record) -> list[Record] | None:
    """Return the records with ``record`` added in order, or ``None`` if its id is already there."""
    if any(r.id == record.id for r in records):
        return None
    out = [*records, record]
    if len(records) and records[-1].sort_key() > record.sort_key():
        out.sort(key=Record.sort_key)
    return out


def derive(records: Iterable[Record], segmenter: Segmenter, reasons: frozenset[str]) -> Derived:
    """Replay one customer's records in event-time order into its effective transitions."""
    replay = _Replay(segmenter, reasons)
    for r in records:
        replay.step(r)
    return Derived(replay.out, replay.ignored)


class _Replay:
    """The lifecycle state machine: never seen -> active <-> lost; segment moves while known."""

    def __init__(self, segmenter: Segmenter, reasons: frozenset[str]) -> None:
        self.segmenter = segmenter
        self.reasons = reasons
        self.out: list[Contribution] = []
        self.ignored: dict[str, str] = {}
        self.state: Kind | None = None  # None: never signed up; SIGNED_UP/REACTIVATED: active; CHURNED: lost
        self.raw: dict[str, str] = {}
        self.keys = segmenter.keys(self.raw)

    def step(self, r: Record) -> None:
        t, state = r.time_us, self.state
        if r.kind is Kind.UPDATED:
            self._move(t, r.segment)
        elif r.kind is Kind.SIGNED_UP:
            if state is not None:
                self.ignored[r.id] = "already_signed_up"
                return
            self._move(t, r.segment)
            self.out.extend((t, NEW, k) for k in self.keys)
            self.state = r.kind
        elif r.kind is Kind.CHURNED:
            if state not in (Kind.SIGNED_UP, Kind.REACTIVATED):
                self.ignored[r.id] = "churn_not_active"
                return
            reason = LOST_REASON + label(r.reason, self.reasons)
            for k in self.keys:
                self.out.append((t, LOST, k))
                self.out.append((t, reason, k))
            self.state = r.kind
        elif r.kind is Kind.REACTIVATED:
            if state is not Kind.CHURNED:
                self.ignored[r.id] = "reactivate_not_lost"
                return
            self.out.extend((t, REACTIVATED, k) for k in self.keys)
            self.state = r.kind

    def _move(self, t: int, segment: dict[str, str] | None) -> None:
        self.raw = {**self.raw, **(segment or {})}
        new_keys = self.segmenter.keys(self.raw)
        if self.state is not None and new_keys != self.keys:
            lost = self.state is Kind.CHURNED
            for old, new in zip(self.keys, new_keys, strict=True):
                if old != new:
                    self.out.append((t, LOST_MOVED_OUT if lost else MOVED_OUT, old))
                    self.out.append((t, LOST_MOVED_IN if lost else MOVED_IN, new))
        self.keys = new_keys


def diff(
    old: Iterable[Contribution], new: Iterable[Contribution]
) -> tuple[Counter[Contribution], Counter[Contribution]]:
    """``(removed, added)`` between two contribution multisets."""
    before, after = Counter(old), Counter(new)
    return before - after, after - before
