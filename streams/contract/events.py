"""The event contract (docs/contract/events.md): CloudEvents 1.0 envelopes and the ``data`` of every type.

Decoding is two-step (envelope with raw ``data``, then the type's ``data`` struct) because the
CloudEvents ``type`` lives outside ``data``; both steps are msgspec, so a valid event costs ~2 µs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# Bounded so that micro-units of the reporting currency fit the stored 64-bit integers.
Amount = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Time = Annotated[datetime, msgspec.Meta(tz=True)]
Segment = dict[Annotated[str, msgspec.Meta(min_length=1, max_length=64)], Annotated[str, msgspec.Meta(max_length=256)]]


class Envelope(msgspec.Struct, frozen=True):
    """A CloudEvents 1.0 event in structured JSON mode; ``data`` is decoded per ``type``."""

    specversion: Literal["1.0"]
    id: EventId
    source: NonEmpty
    type: str
    time: Time
    data: msgspec.Raw


class CustomerSignedUp(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """``customer.signed_up``: a new customer; ``segment`` maps dimension to value."""

    customer_id: NonEmpty
    segment: Segment = {}


class CustomerUpdated(msgspec.Struct, frozen=True):
    """``customer.updated``: moves the customer between segments (merged per dimension); not churn."""

    customer_id: NonEmpty
    segment: Segment


class CustomerChurned(msgspec.Struct, frozen=True):
    """``customer.churned``: the customer is lost, with an optional reason."""

    customer_id: NonEmpty
    reason: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class CustomerReactivated(msgspec.Struct, frozen=True):
    """``customer.reactivated``: a lost customer is won back."""

    customer_id: NonEmpty


class OrderPlaced(msgspec.Struct, frozen=True):
    """``order.placed``: an order with its amount and currency."""

    customer_id: NonEmpty
    order_id: NonEmpty
    amount: Amount
    currency: Currency


class OrderRefunded(msgspec.Struct, frozen=True):
    """``order.refunded``: money returned for an order."""

    customer_id: NonEmpty
    order_id: NonEmpty
    amount: Amount
    currency: Currency


class OrderReturned(msgspec.Struct, frozen=True):
    """``order.returned``: goods sent back, optionally with an amount."""

    customer_id: NonEmpty
    order_id: NonEmpty
    amount: Amount | None = None
    currency: Currency | None = None


TicketKind = Literal["complaint", "request", "question", "incident"]


class TicketOpened(msgspec.Struct, frozen=True):
    """``ticket.opened``: a support ticket; ``kind`` defaults to ``request``."""

    customer_id: NonEmpty
    ticket_id: NonEmpty
    kind: TicketKind = "request"
    category: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    channel: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class TicketReplied(msgspec.Struct, frozen=True):
    """``ticket.replied``: a reply by an agent or the customer."""

    customer_id: NonEmpty
    ticket_id: NonEmpty
    author: Literal["agent", "customer"]


class TicketResolved(msgspec.Struct, frozen=True):
    """``ticket.resolved``: the ticket is solved."""

    customer_id: NonEmpty
    ticket_id: NonEmpty


class TicketReopened(msgspec.Struct, frozen=True):
    """``ticket.reopened``: a resolved ticket is open again."""

    customer_id: NonEmpty
    ticket_id: NonEmpty


class SurveyNps(msgspec.Struct, frozen=True):
    """``survey.nps``: a 0-10 recommendation score."""

    customer_id: NonEmpty
    score: Annotated[int, msgspec.Meta(ge=0, le=10)]
    ticket_id: NonEmpty | None = None


class SurveyCsat(msgspec.Struct, frozen=True):
    """``survey.csat``: a 1-5 satisfaction score."""

    customer_id: NonEmpty
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    ticket_id: NonEmpty | None = None


class FeedbackReceived(msgspec.Struct, frozen=True):
    """``feedback.received``: a review, social post, email… about the company."""

    customer_id: NonEmpty
    feedback_id: NonEmpty
    channel: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    rating: float | None = None


class FeedbackResponded(msgspec.Struct, frozen=True):
    """``feedback.responded``: the company answered a feedback item."""

    customer_id: NonEmpty
    feedback_id: NonEmpty


class RepJoined(msgspec.Struct, frozen=True):
    """``rep.joined``: a sales rep joined a team."""

    rep_id: NonEmpty
    team: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class RepLeft(msgspec.Struct, frozen=True):
    """``rep.left``: a sales rep left."""

    rep_id: NonEmpty
    team: Annotated[str, msgspec.Meta(max_length=256)] | None = None


DataType = (
    CustomerSignedUp
    | CustomerUpdated
    | CustomerChurned
    | CustomerReactivated
    | OrderPlaced
    | OrderRefunded
    | OrderReturned
    | TicketOpened
    | TicketReplied
    | TicketResolved
    | TicketReopened
    | SurveyNps
    | SurveyCsat
    | FeedbackReceived
    | FeedbackResponded
    | RepJoined
    | RepLeft
)

DATA_TYPES: dict[str, type[DataType]] = {
    "customer.signed_up": CustomerSignedUp,
    "customer.updated": CustomerUpdated,
    "customer.churned": CustomerChurned,
    "customer.reactivated": CustomerReactivated,
    "order.placed": OrderPlaced,
    "order.refunded": OrderRefunded,
    "order.returned": OrderReturned,
    "ticket.opened": TicketOpened,
    "ticket.replied": TicketReplied,
    "ticket.resolved": TicketResolved,
    "ticket.reopened": TicketReopened,
    "survey.nps": SurveyNps,
    "survey.csat": SurveyCsat,
    "feedback.received": FeedbackReceived,
    "feedback.responded": FeedbackResponded,
    "rep.joined": RepJoined,
    "rep.left": RepLeft,
}

EVENT_TYPES = tuple(DATA_TYPES)
LIFECYCLE_TYPES = frozenset(t for t in EVENT_TYPES if t.startswith("customer."))


def partition_key(data: DataType) -> str:
    """The key the monitor re-keys an event by: the customer, or the rep for ``rep.*``."""
    if isinstance(data, RepJoined | RepLeft):
        return "rep:" + data.rep_id
    return data.customer_id
