"""What the monitor remembers per customer (or per sales rep): one compact record per applied event.

Records are kept sorted by ``(time, type, id)``; every KPI fact is derived from that *set* by
:func:`metrics.facts.derive`, so arrival order and redeliveries cannot change a KPI.
"""

from __future__ import annotations

from enum import IntEnum

import msgspec


class T(IntEnum):
    """Event types; the value also orders records that share a timestamp (lifecycle first)."""

    SIGNED_UP = 0
    UPDATED = 1
    CHURNED = 2
    REACTIVATED = 3
    ORDER_PLACED = 10
    ORDER_REFUNDED = 11
    ORDER_RETURNED = 12
    TICKET_OPENED = 20
    TICKET_REPLIED = 21
    TICKET_RESOLVED = 22
    TICKET_REOPENED = 23
    SURVEY_NPS = 30
    SURVEY_CSAT = 31
    FEEDBACK_RECEIVED = 40
    FEEDBACK_RESPONDED = 41
    REP_JOINED = 50
    REP_LEFT = 51


TYPE_CODES: dict[str, T] = {
    "customer.signed_up": T.SIGNED_UP,
    "customer.updated": T.UPDATED,
    "customer.churned": T.CHURNED,
    "customer.reactivated": T.REACTIVATED,
    "order.placed": T.ORDER_PLACED,
    "order.refunded": T.ORDER_REFUNDED,
    "order.returned": T.ORDER_RETURNED,
    "ticket.opened": T.TICKET_OPENED,
    "ticket.replied": T.TICKET_REPLIED,
    "ticket.resolved": T.TICKET_RESOLVED,
    "ticket.reopened": T.TICKET_REOPENED,
    "survey.nps": T.SURVEY_NPS,
    "survey.csat": T.SURVEY_CSAT,
    "feedback.received": T.FEEDBACK_RECEIVED,
    "feedback.responded": T.FEEDBACK_RESPONDED,
    "rep.joined": T.REP_JOINED,
    "rep.left": T.REP_LEFT,
}


class Rec(msgspec.Struct, array_like=True, frozen=True):
    """One applied event. ``ref`` is the order, ticket or feedback id; ``text`` the churn reason,
    ticket ``kind:category``, reply author or feedback channel; ``value`` the amount in micro-units of
    the reporting currency or the survey score; ``segment`` the segment attributes (sign-up, update).
    """

    time_us: int
    type: T
    id: str
    ref: str | None = None
    text: str | None = None
    value: int | None = None
    segment: dict[str, str] | None = None

    def sort_key(self) -> tuple[int, int, str]:
        return (self.time_us, int(self.type), self.id)


class CustomerState(msgspec.Struct, array_like=True):
    """The state stored per key (customer, or ``rep:<id>``); new fields are appended with defaults."""

    records: list[Rec] = []
    newest_us: int | None = None
    """Newest event time of this key (any stream): the history horizon is measured from it."""
    facts: bytes = b""
    """The key's fact set (:mod:`metrics.blob`): the next change ships only what differs from it."""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(CustomerState)


_BUFFER = bytearray()


def encode_state(state: CustomerState) -> bytes:
    # encode() leaves slack in the bytes it returns (~40 % for a typical state); a copy out of a
    # reused buffer is exact, and states stay in memory by the million.
    _ENCODER.encode_into(state, _BUFFER)
    return bytes(_BUFFER)


def decode_state(raw: bytes | None) -> CustomerState:
    return CustomerState() if raw is None else _DECODER.decode(raw)


def insert(records: list[Rec], record: Rec) -> list[Rec] | None:
    """The records with ``record`` added in order, or ``None`` if its id is already there."""
    if any(r.id == record.id for r in records):
        return None
    out = [*records, record]
    if records and records[-1].sort_key() > record.sort_key():
        out.sort(key=Rec.sort_key)
    return out
