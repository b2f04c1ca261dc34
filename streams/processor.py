"""Applies one valid event to its key's stored state: dedupe, allowed lateness, record (no Faust here).

The Faust agent hands over the stored bytes and the event and writes back the bytes it gets; the
table's changelog then carries the new state to every worker's :class:`metrics.store.KpiStore`.
"""

from __future__ import annotations

from dataclasses import dataclass

from metrics.facts import Context, derive
from metrics.prune import prune
from metrics.records import TYPE_CODES, CustomerState, Rec, decode_state, encode_state, insert
from metrics.segments import Segmenter
from streams import contract as c
from streams.config import Settings
from streams.decode import Event

MICRO = 1_000_000
MAX_STORED = 2**63  # msgpack integers


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one event: ``status`` is applied, ignored (with the reason), duplicate, too_late or
    unprocessable (with the reason)."""

    status: str
    state: bytes | None = None
    detail: str = ""


def context(settings: Settings) -> Context:
    return Context(
        segmenter=Segmenter(settings.segments),
        reasons=frozenset(settings.churn_reasons),
        categories=frozenset(settings.ticket_categories),
    )


class Processor:
    """Turns events into records of the key's state; pure apart from the settings it reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx = context(settings)
        self.lateness_us = settings.allowed_lateness_seconds * MICRO
        self.history_us = settings.history_seconds * MICRO
        self.rates = {settings.currency: 1.0, **settings.currency_rates}

    def micro(self, amount: float | None, currency: str | None) -> int | None:
        """``amount`` in micro-units of the reporting currency (integers: sums are order-independent)."""
        if amount is None:
            return None
        value = round(amount * self.rates[currency or self.settings.currency] * MICRO)
        if value >= MAX_STORED:
            raise ValueError(f"amount {amount} {currency} is too large to store in {self.settings.currency}")
        return value

    def record(self, event: Event) -> Rec:
        d = event.data
        ref: str | None = None
        text: str | None = None
        value: int | None = None
        segment: dict[str, str] | None = None
        if isinstance(d, c.CustomerSignedUp | c.CustomerUpdated):
            segment = dict(d.segment)
        elif isinstance(d, c.CustomerChurned):
            text = d.reason
        elif isinstance(d, c.OrderPlaced | c.OrderRefunded | c.OrderReturned):
            ref, value = d.order_id, self.micro(d.amount, d.currency)
        elif isinstance(d, c.TicketOpened):
            ref, text = d.ticket_id, f"{d.kind}:{d.category or ''}"
        elif isinstance(d, c.TicketReplied):
            ref, text = d.ticket_id, d.author
        elif isinstance(d, c.TicketResolved | c.TicketReopened):
            ref = d.ticket_id
        elif isinstance(d, c.SurveyNps | c.SurveyCsat):
            ref, value = d.ticket_id, d.score
        elif isinstance(d, c.FeedbackReceived):
            ref, text = d.feedback_id, d.channel
        elif isinstance(d, c.FeedbackResponded):
            ref = d.feedback_id
        elif isinstance(d, c.RepJoined | c.RepLeft):
            text = d.team
        return Rec(event.time_us, TYPE_CODES[event.type], event.id, ref, text, value, segment)

    def apply(self, stored: bytes | None, event: Event) -> Outcome:
        try:
            record = self.record(event)
        except ValueError as exc:
            return Outcome("unprocessable", detail=str(exc))
        old = decode_state(stored)
        records = insert(old.records, record)
        if records is None:
            return Outcome("duplicate")
        if old.newest_us is not None and event.time_us < old.newest_us - self.lateness_us:
            behind = (old.newest_us - event.time_us) / MICRO
            return Outcome("too_late", detail=f"{behind:.0f}s behind the newest event of the same key, "
                           f"allowed_lateness={self.settings.allowed_lateness}")
        newest = event.time_us if old.newest_us is None else max(old.newest_us, event.time_us)
        records = prune(records, newest - self.history_us)
        raw = encode_state(CustomerState(records=records, newest_us=newest))
        ignored = derive(records, self.ctx).ignored.get(event.id)
        return Outcome("ignored" if ignored else "applied", raw, ignored or "")
