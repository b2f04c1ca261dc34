"""KPI *facts*: what a customer's (or rep's) records, replayed in event-time order, amount to.

The replay itself is compiled (``native/src/replay.rs``; its Python reference lives in the tests).
A fact is ``(time_us, kind, segments, value)``: "at this instant, in each of these segments, this
happened" (a sign-up, an order of 12.50 EUR, a first reply after 3 h...). One fact carries the whole
tuple of segment keys it counts for (``("all", "plan:pro", "region:eu")``), so an event costs one fact,
not one per segment. Facts are a pure function of the records, so the index only ever moves from the
old fact multiset to the new one. Every fact of a customer is attributed to the
customer's segments *at the fact's time*.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.slices import FactSettings
from metrics.segments import ALL, Segmenter

FACTS_VERSION = 3  # bump when what the replay emits changes: KPI store checkpoints become invalid
Keys = tuple[str, ...]
Fact = tuple[int, str, Keys, int | None]

# lifecycle: how a transition changes the active customers and the lost pool of a segment
NEW, LOST, REACTIVATED = "new", "lost", "reactivated"
MOVED_IN, MOVED_OUT, LOST_MOVED_IN, LOST_MOVED_OUT = "moved_in", "moved_out", "lost_moved_in", "lost_moved_out"
LOST_REASON = "lost_reason:"
ACTIVE_UP, ACTIVE_DOWN = (NEW, REACTIVATED, MOVED_IN), (LOST, MOVED_OUT)
POOL_UP, POOL_DOWN = (LOST, LOST_MOVED_IN), (REACTIVATED, LOST_MOVED_OUT)
# commerce (values: micro-units of the reporting currency)
ORDER, ORDER_FIRST, ORDER_SECOND = "order", "order_first", "order_second"
# At the time of the previous (2nd previous) order, the value is the time of the order that followed: an
# interval (a, b); the pairs inside a window ending now are then a plain count over their time.
ORDER_PAIR1, ORDER_PAIR2 = "order_pair1", "order_pair2"
REFUND, REFUNDED_ORDER, RETURN, RETURNED_ORDER = "refund", "refunded_order", "return", "returned_order"
# support (durations in µs)
TICKET_OPENED, COMPLAINT = "ticket_opened", "complaint:"
FIRST_RESPONSE, RESOLUTION, REOPENED = "first_response", "resolution", "reopened"
AWAIT_REPLY_IN, AWAIT_REPLY_OUT = "await_reply_in", "await_reply_out"
AWAIT_RESOLUTION_IN, AWAIT_RESOLUTION_OUT = "await_resolution_in", "await_resolution_out"
PENDING_REPLY = "pending_reply"  # at the open time of each ticket still waiting for a first reply
# feedback and surveys
FEEDBACK_RECEIVED, FEEDBACK_RESPONDED = "feedback_received", "feedback_responded"
NPS_PROMOTER, NPS_PASSIVE, NPS_DETRACTOR = "nps_promoter", "nps_passive", "nps_detractor"
CSAT_GOOD, CSAT_RESPONSE = "csat_good", "csat_response"
# sales team (segment "all" only)
REP_JOINED, REP_LEFT = "rep_joined", "rep_left"
# A rep's stint on the team, at its end (the rep.left) with the time it began as value: the reps of a
# period's start who left in it are the stints ending in the period that began before it.
REP_STINT = "rep_stint"
ALL_ONLY: tuple[str, ...] = (ALL,)


@dataclass(frozen=True)
class Context:
    """What the replay needs from the configuration: segment values and bounded label sets."""

    segmenter: Segmenter
    reasons: frozenset[str]
    categories: frozenset[str]
    history_us: int  # a ticket resolved longer ago than this takes no more replies or reopens


def context(facts: FactSettings) -> Context:
    return Context(
        segmenter=Segmenter(facts.segments),
        reasons=frozenset(facts.churn_reasons),
        categories=frozenset(facts.ticket_categories),
        history_us=facts.history_s * 1_000_000,
    )
