"""Applies valid events to per-customer state and keeps the per-partition KPI indexes (no Faust here).

The Faust agent only feeds this: it hands over the event, writes the state bytes it gets back to
the customer table (whose changelog makes them durable), and forwards rejections to the
dead-letter topic. Replays of the table's
changelog go through :meth:`Engine.replace`, so live processing and recovery share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from metrics.index import CombinedView, LifecycleIndex
from metrics.kpis import active_now, customer_kpis
from metrics.lifecycle import Derived, Kind, Record, derive, diff, insert
from metrics.periods import Period
from metrics.segments import Segmenter
from streams.config import Settings
from streams.contract import CustomerChurned, CustomerReactivated, CustomerSignedUp, CustomerUpdated
from streams.decode import Event

_LIFECYCLE: dict[type, Kind] = {
    CustomerSignedUp: Kind.SIGNED_UP,
    CustomerUpdated: Kind.UPDATED,
    CustomerChurned: Kind.CHURNED,
    CustomerReactivated: Kind.REACTIVATED,
}


class CustomerState(msgspec.Struct, array_like=True):
    """What the customer table stores per customer (msgpack); new fields are appended with defaults."""

    lifecycle: list[Record] = []
    newest_us: int | None = None
    """Newest event time of this customer: the allowed lateness is measured from it."""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(CustomerState)


def encode_state(state: CustomerState) -> bytes:
    return _ENCODER.encode(state)


def decode_state(raw: bytes | None) -> CustomerState:
    return CustomerState() if raw is None else _DECODER.decode(raw)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of applying one event: ``status`` is applied, duplicate, too_late, ignored or unsupported."""

    status: str
    state: bytes | None = None
    detail: str = ""


class Engine:
    """Customer lifecycle processing for the partitions this worker owns."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.segmenter = Segmenter(settings.segments)
        self.reasons = frozenset(settings.churn_reasons)
        self.lateness_us = settings.allowed_lateness_seconds * 1_000_000
        self.indexes: dict[int, LifecycleIndex] = {}
        # The engine keeps its own copy of each customer's latest state, so that the index is a pure
        # function of what it was told, whatever the table store does on rebalance.
        self.states: dict[int, dict[bytes, bytes]] = {}
        self.owned: frozenset[int] = frozenset()

    # -- state changes --------------------------------------------------------------------------

    def index(self, partition: int) -> LifecycleIndex:
        idx = self.indexes.get(partition)
        if idx is None:
            idx = self.indexes[partition] = LifecycleIndex()
        return idx

    def watermark_us(self) -> int | None:
        """The newest event time seen in the owned partitions."""
        times = [i.newest_us for p, i in self.indexes.items() if p in self.owned and i.newest_us is not None]
        return max(times) if times else None

    def apply(self, partition: int, key: bytes, event: Event) -> Outcome:
        """Apply ``event`` to customer ``key``; a new state in the outcome must be stored by the caller."""
        kind = _LIFECYCLE.get(type(event.data))
        if kind is None:
            return Outcome("unsupported")
        data = event.data
        record = Record(
            time_us=event.time_us,
            kind=kind,
            id=event.id,
            reason=data.reason if isinstance(data, CustomerChurned) else None,
            segment=dict(data.segment) if isinstance(data, CustomerSignedUp | CustomerUpdated) else None,
        )
        states = self.states.setdefault(partition, {})
        old = decode_state(states.get(key))
        records = insert(old.lifecycle, record)
        if records is None:
            return Outcome("duplicate")
        if old.newest_us is not None and event.time_us < old.newest_us - self.lateness_us:
            behind = (old.newest_us - event.time_us) / 1e6
            return Outcome("too_late", detail=f"{behind:.0f}s behind the customer's newest event, "
                           f"allowed_lateness={self.settings.allowed_lateness}")
        new = CustomerState(lifecycle=records, newest_us=max(event.time_us, old.newest_us or event.time_us))
        derived = self._replace(partition, old, new)
        raw = encode_state(new)
        states[key] = raw
        self.index(partition).observe(event.time_us)
        ignored = derived.ignored.get(event.id)
        return Outcome("ignored" if ignored else "applied", raw, ignored or "")

    def replace(self, partition: int, key: bytes, new: bytes | None) -> None:
        """Set customer ``key`` to the stored state ``new`` (changelog replay; idempotent)."""
        states = self.states.setdefault(partition, {})
        old_state, new_state = decode_state(states.get(key)), decode_state(new)
        self._replace(partition, old_state, new_state)
        if new is None:
            states.pop(key, None)
        else:
            states[key] = new
        if new_state.newest_us is not None:
            self.index(partition).observe(new_state.newest_us)

    def customers(self) -> int:
        """Customers tracked in the owned partitions."""
        return sum(len(s) for p, s in self.states.items() if p in self.owned)

    def _replace(self, partition: int, old: CustomerState, new: CustomerState) -> Derived:
        before = derive(old.lifecycle, self.segmenter, self.reasons)
        after = derive(new.lifecycle, self.segmenter, self.reasons)
        removed, added = diff(before.contributions, after.contributions)
        if removed or added:
            self.index(partition).apply(removed, added)
        return after

    # -- ownership ------------------------------------------------------------------------------

    def assign(self, partitions: set[int]) -> None:
        """Own exactly ``partitions``; indexes of partitions no longer owned are dropped."""
        self.owned = frozenset(partitions)
        for p in set(self.indexes) | set(self.states):
            if p not in self.owned:
                self.indexes.pop(p, None)
                self.states.pop(p, None)

    # -- reading --------------------------------------------------------------------------------

    def view(self) -> CombinedView:
        return CombinedView([i for p, i in sorted(self.indexes.items()) if p in self.owned])

    def now_us(self, wall_us: int) -> int | None:
        """The instant rolling windows end at: wall clock, or the newest event time (``clock=event``)."""
        if self.settings.clock == "event":
            newest = self.watermark_us()
            # Windows are half-open [start, end): end just after the newest event so it is included.
            return None if newest is None else newest + 1
        return wall_us

    def kpis(self, period: Period, segment: str) -> dict[str, Any]:
        """The KPI query answer for one period and segment (KPIs plus their inputs)."""
        view = self.view()
        customers = customer_kpis(view, segment, period.start_us, period.end_us)
        body = customers.to_json()
        return {
            "period": {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()},
            "segment": segment,
            "timezone": self.settings.timezone,
            "kpis": {
                "retention_rate": body["retention_rate"],
                "churn_rate": body["churn_rate"],
                "winback_rate": body["winback_rate"],
                "lost_by_reason": customers.lost_by_reason,
                "customers_active_at_end": customers.E,
            },
            "inputs": {k: v for k, v in body["inputs"].items() if k != "lost_by_reason"},
            "partitions": sorted(self.owned),
        }

    def active(self, segment: str, now_us: int) -> int:
        return active_now(self.view(), segment, now_us)
