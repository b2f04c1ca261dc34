"""Allowed lateness: whether an event arrives too late to be applied.

Measured per key *and per stream* (the topic family of the event's type): within a stream a key's events
keep their publish order, across streams a worker reads backlogs in any interleaving, so only the former
may judge an event. Beyond ``history`` any stream is late (its ids are pruned). docs/contract/events.md
("Late events") states the rule; docs/architecture.md says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from metrics.records import Rec, T

STREAMS = ("customers and orders", "tickets", "surveys and feedback", "reps")


def stream_of(t: T) -> str:
    """The stream (default topic family) of an event type."""
    return STREAMS[0] if t < 20 else STREAMS[1] if t < 30 else STREAMS[2] if t < 50 else STREAMS[3]


def newest_by_stream(records: Iterable[Rec]) -> dict[str, int]:
    newest: dict[str, int] = {}
    for r in records:
        stream = stream_of(r.type)
        if r.time_us > newest.get(stream, r.time_us - 1):
            newest[stream] = r.time_us
    return newest


@dataclass(frozen=True, slots=True)
class Late:
    """How far (µs) an event is behind what, and which limit that breaks."""

    behind_us: int
    what: str  # "the newest <stream> event" or "the newest event"
    limit: str  # "allowed_lateness=7d" or "history=800d"


@dataclass(frozen=True, slots=True)
class Lateness:
    lateness_us: int
    history_us: int
    lateness: str  # as configured, for messages
    history: str

    def judge(self, time_us: int, t: T, key_newest: int | None, stream_newest: int | None) -> Late | None:
        """Whether an event of type ``t`` at ``time_us`` is too late, given the key's newest event time
        and the newest of its stream (both over the events applied before it)."""
        if key_newest is not None and time_us < key_newest - self.history_us:
            return Late(key_newest - time_us, "the newest event", f"history={self.history}")
        if stream_newest is not None and time_us < stream_newest - self.lateness_us:
            what = f"the newest {stream_of(t)} event"
            return Late(stream_newest - time_us, what, f"allowed_lateness={self.lateness}")
        return None
