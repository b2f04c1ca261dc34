"""Allowed lateness: whether an event arrives too late to be applied.

Lateness is measured per key (customer, or sales rep) *and per stream* — the topic family of the event's
type in docs/contract/events.md: customers and orders, tickets, surveys and feedback, reps. Within a stream a key's events
arrive in the order they were published (one partition of one topic). Across streams they do not: a
worker reads the backlogs of several topics in any interleaving, so a customer's March ticket can be read
before its January sign-up although both were published in time. Measured across streams, that sign-up
would be rejected for the worker's scheduling rather than for its publisher's delay, and a first start on
topics holding months of history would lose events. So an event is too late when it is more than
``allowed_lateness`` behind the newest earlier event of its own stream and key.

Whatever the stream, an event more than ``history`` behind the key's newest event is too late too: the
records (and ids) it could repeat are pruned from the key's state there (:mod:`metrics.prune`), so it
could not be deduplicated.
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
