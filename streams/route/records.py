"""Valid events become compact records (:class:`metrics.records.Rec`), amounts in the reporting currency.

The route stage records every valid event as it packs it; the apply stage then needs no JSON and no
currency table. One rule converts money everywhere: an amount in the reporting currency counts as it
is, another currency's is multiplied by its rate, and the sum is kept in integer micro-units.
"""

from __future__ import annotations

from collections.abc import Mapping

from metrics.records import TYPE_CODES, Rec
from streams.contract import events as c
from streams.contract.decode import Event
from streams.exceptions import AmountTooLarge

MICRO = 1_000_000
MAX_STORED = 2**63  # msgpack integers


class Recorder:
    """Turns decoded events into records; ``rates`` maps every accepted currency to its worth in ``currency``."""

    def __init__(self, currency: str, rates: Mapping[str, float]) -> None:
        self.currency = currency
        self.rates = rates

    def micro(self, amount: float | None, currency: str | None) -> int | None:
        """``amount`` in micro-units of the reporting currency (integers: sums are order-independent).

        An amount in the reporting currency is never multiplied (rounding ``x * 1.0`` is exact anyway,
        but the rule is: convert only what is foreign)."""
        if amount is None:
            return None
        reporting = self.currency
        if currency is None or currency == reporting:
            value = round(amount * MICRO)
        else:
            value = round(amount * self.rates[currency] * MICRO)
        if value >= MAX_STORED:
            raise AmountTooLarge(f"amount {amount} {currency} is too large to store in {self.currency}")
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

