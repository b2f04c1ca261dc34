"""The Python reference of the per-key replay (records -> facts), kept only to check the compiled
implementation (``native/src/replay.rs``) against, byte for byte, in property tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from metrics.facts import (
    ALL_ONLY,
    AWAIT_REPLY_IN,
    AWAIT_REPLY_OUT,
    AWAIT_RESOLUTION_IN,
    AWAIT_RESOLUTION_OUT,
    COMPLAINT,
    CSAT_GOOD,
    CSAT_RESPONSE,
    FEEDBACK_RECEIVED,
    FEEDBACK_RESPONDED,
    FIRST_RESPONSE,
    LOST,
    LOST_MOVED_IN,
    LOST_MOVED_OUT,
    LOST_REASON,
    MOVED_IN,
    MOVED_OUT,
    NEW,
    NPS_DETRACTOR,
    NPS_PASSIVE,
    NPS_PROMOTER,
    ORDER,
    ORDER_FIRST,
    ORDER_PAIR1,
    ORDER_PAIR2,
    ORDER_SECOND,
    PENDING_REPLY,
    REACTIVATED,
    REFUND,
    REFUNDED_ORDER,
    REOPENED,
    REP_JOINED,
    REP_LEFT,
    REP_STINT,
    RESOLUTION,
    RETURN,
    RETURNED_ORDER,
    TICKET_OPENED,
    Context,
    Fact,
    Keys,
)
from metrics.records import Rec, T
from metrics.segments import label


@dataclass
class Derived:
    """The facts of one key, and why some records changed nothing (id -> reason)."""

    facts: list[Fact] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)


@dataclass
class _Ticket:
    opened: int | None = None
    replied: bool = False
    waits_for_reply: bool = False  # in the first-reply backlog: no agent reply and not resolved yet
    # Segments the ticket entered the backlogs in: it must leave them from the same segments.
    reply_keys: tuple[str, ...] = ()
    resolution_keys: tuple[str, ...] = ()
    resolved: bool = False  # currently resolved (reopens clear it)
    resolved_at: int = 0  # when it was resolved last
    first_resolution_seen: bool = False


class _Replay:
    """Walks one key's records in order, keeping lifecycle, segment, orders and tickets."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.out = Derived()
        self.state: T | None = None  # None: never signed up; SIGNED_UP/REACTIVATED: active; CHURNED: lost
        self.raw: dict[str, str] = {}
        self.keys = ctx.segmenter.keys(self.raw)
        self.orders: dict[str, list[int]] = {}  # segment -> times of its orders so far
        self.refunded: set[str] = set()
        self.returned: set[str] = set()
        self.tickets: dict[str, _Ticket] = {}
        self.feedback: dict[str, tuple[int, tuple[str, ...]]] = {}
        self.responded: set[str] = set()
        self.rep_since: int | None = None  # on the team since (None: not on it)

    def emit(self, t: int, kind: str, value: int | None = 1, keys: Keys | None = None) -> None:
        self.out.facts.append((t, kind, self.keys if keys is None else keys, value))

    def ignore(self, r: Rec, reason: str) -> None:
        self.out.ignored[r.id] = reason

    # -- lifecycle -------------------------------------------------------------------------------

    def move(self, t: int, segment: dict[str, str] | None) -> None:
        self.raw = {**self.raw, **(segment or {})}
        new_keys = self.ctx.segmenter.keys(self.raw)
        if self.state is not None and new_keys != self.keys:
            lost = self.state is T.CHURNED
            pairs = [(old, new) for old, new in zip(self.keys, new_keys, strict=True) if old != new]
            self.emit(t, LOST_MOVED_OUT if lost else MOVED_OUT, keys=tuple(old for old, _ in pairs))
            self.emit(t, LOST_MOVED_IN if lost else MOVED_IN, keys=tuple(new for _, new in pairs))
        self.keys = new_keys

    def updated(self, r: Rec) -> None:
        self.move(r.time_us, r.segment)

    def signed_up(self, r: Rec) -> None:
        if self.state is not None:
            return self.ignore(r, "already_signed_up")
        self.move(r.time_us, r.segment)
        self.emit(r.time_us, NEW)
        self.state = T.SIGNED_UP
        return None

    def churned(self, r: Rec) -> None:
        if self.state not in (T.SIGNED_UP, T.REACTIVATED):
            return self.ignore(r, "churn_not_active")
        self.emit(r.time_us, LOST)
        self.emit(r.time_us, LOST_REASON + label(r.text, self.ctx.reasons))
        self.state = T.CHURNED
        return None

    def reactivated(self, r: Rec) -> None:
        if self.state is not T.CHURNED:
            return self.ignore(r, "reactivate_not_lost")
        self.emit(r.time_us, REACTIVATED)
        self.state = T.REACTIVATED
        return None

    # -- commerce --------------------------------------------------------------------------------

    def order(self, r: Rec) -> None:
        t = r.time_us
        self.emit(t, ORDER, r.value)
        # The previous orders differ per segment once a customer has moved; segments that share the
        # same history (nearly always all of them) share one fact.
        groups: dict[tuple[int | None, int | None, int], list[str]] = {}
        for key in self.keys:
            times = self.orders.setdefault(key, [])
            n = len(times)
            groups.setdefault((times[-1] if n >= 1 else None, times[-2] if n >= 2 else None, min(n, 2)), []).append(key)
            times.append(t)
        for (previous, second_previous, n), keys in groups.items():
            group = tuple(keys)
            if previous is not None:
                self.emit(previous, ORDER_PAIR1, t, keys=group)
            if second_previous is not None:
                self.emit(second_previous, ORDER_PAIR2, t, keys=group)
            if n < 2:
                self.emit(t, ORDER_FIRST if n == 0 else ORDER_SECOND, keys=group)

    def refund(self, r: Rec) -> None:
        self.emit(r.time_us, REFUND, r.value)
        if r.ref not in self.refunded:
            self.refunded.add(r.ref or "")
            self.emit(r.time_us, REFUNDED_ORDER)

    def returned_order(self, r: Rec) -> None:
        self.emit(r.time_us, RETURN, r.value or 0)
        if r.ref not in self.returned:
            self.returned.add(r.ref or "")
            self.emit(r.time_us, RETURNED_ORDER)

    # -- support ---------------------------------------------------------------------------------

    def ticket_opened(self, r: Rec) -> None:
        ticket = self.tickets.setdefault(r.ref or "", _Ticket())
        if ticket.opened is not None:
            return self.ignore(r, "ticket_already_open")
        ticket.opened = t = r.time_us
        kind, _, category = (r.text or "request:").partition(":")
        self.emit(t, TICKET_OPENED)
        if kind == "complaint":
            self.emit(t, COMPLAINT + label(category or None, self.ctx.categories))
        self.emit(t, AWAIT_REPLY_IN)
        self.emit(t, AWAIT_RESOLUTION_IN)
        ticket.waits_for_reply = True
        ticket.reply_keys = ticket.resolution_keys = self.keys
        return None

    def closed(self, ticket: _Ticket | None, t: int) -> bool:
        """Resolved more than ``history`` before ``t``: replies and reopens no longer count, so pruning
        may drop the ticket without changing what a later record does."""
        return ticket is not None and ticket.resolved and t - ticket.resolved_at > self.ctx.history_us

    def ticket_replied(self, r: Rec) -> None:
        ticket = self.tickets.get(r.ref or "")
        if self.closed(ticket, r.time_us):
            return self.ignore(r, "ticket_resolved_too_long_ago")
        if ticket is None or ticket.opened is None:
            return self.ignore(r, "reply_to_unknown_ticket")
        if r.text != "agent" or ticket.replied:
            return None
        ticket.replied = True
        self.emit(r.time_us, FIRST_RESPONSE, max(r.time_us - ticket.opened, 0))
        self.stop_waiting_for_reply(ticket, r.time_us)
        return None

    def stop_waiting_for_reply(self, ticket: _Ticket, t: int) -> None:
        if ticket.waits_for_reply:
            ticket.waits_for_reply = False
            self.emit(t, AWAIT_REPLY_OUT, keys=ticket.reply_keys)

    def ticket_resolved(self, r: Rec) -> None:
        ticket = self.tickets.get(r.ref or "")
        if ticket is None or ticket.opened is None or ticket.resolved:
            return self.ignore(r, "resolve_unknown_or_resolved_ticket")
        ticket.resolved, ticket.resolved_at = True, r.time_us
        self.stop_waiting_for_reply(ticket, r.time_us)  # solved without a reply: nobody waits for one
        if not ticket.first_resolution_seen:
            ticket.first_resolution_seen = True
            self.emit(r.time_us, RESOLUTION, max(r.time_us - ticket.opened, 0))
        self.emit(r.time_us, AWAIT_RESOLUTION_OUT, keys=ticket.resolution_keys)
        return None

    def ticket_reopened(self, r: Rec) -> None:
        ticket = self.tickets.get(r.ref or "")
        if self.closed(ticket, r.time_us):
            return self.ignore(r, "ticket_resolved_too_long_ago")
        if ticket is None or not ticket.resolved:
            return self.ignore(r, "reopen_not_resolved_ticket")
        ticket.resolved = False
        self.emit(r.time_us, REOPENED)
        self.emit(r.time_us, AWAIT_RESOLUTION_IN)
        ticket.resolution_keys = self.keys
        return None

    # -- surveys and feedback --------------------------------------------------------------------

    def nps(self, r: Rec) -> None:
        score = r.value or 0
        self.emit(r.time_us, NPS_PROMOTER if score >= 9 else NPS_PASSIVE if score >= 7 else NPS_DETRACTOR)

    def csat(self, r: Rec) -> None:
        self.emit(r.time_us, CSAT_RESPONSE)
        if (r.value or 0) >= 4:
            self.emit(r.time_us, CSAT_GOOD)

    def feedback_received(self, r: Rec) -> None:
        if (r.ref or "") in self.feedback:
            return self.ignore(r, "feedback_already_received")
        self.feedback[r.ref or ""] = (r.time_us, self.keys)
        self.emit(r.time_us, FEEDBACK_RECEIVED)
        return None

    def feedback_responded(self, r: Rec) -> None:
        if (r.ref or "") not in self.feedback:  # no item received (yet, in event time) to answer
            return self.ignore(r, "response_to_unknown_feedback")
        self.responded.add(r.ref or "")
        return None

    # -- sales team ------------------------------------------------------------------------------

    def rep_joined(self, r: Rec) -> None:
        if self.rep_since is not None:
            return self.ignore(r, "rep_already_joined")
        self.rep_since = r.time_us
        self.emit(r.time_us, REP_JOINED, keys=ALL_ONLY)
        return None

    def rep_left(self, r: Rec) -> None:
        if self.rep_since is None:
            return self.ignore(r, "rep_not_joined")
        self.emit(r.time_us, REP_LEFT, keys=ALL_ONLY)
        self.emit(r.time_us, REP_STINT, self.rep_since, keys=ALL_ONLY)
        self.rep_since = None
        return None

    def finish(self) -> Derived:
        # Facts that depend on what happened *later* are emitted once everything is replayed.
        for ref, (t, keys) in self.feedback.items():
            if ref in self.responded:
                self.emit(t, FEEDBACK_RESPONDED, keys=keys)
        for ticket in self.tickets.values():
            if ticket.opened is not None and ticket.waits_for_reply:
                self.emit(ticket.opened, PENDING_REPLY, keys=ALL_ONLY)
        return self.out


_HANDLERS: dict[T, Callable[[_Replay, Rec], None]] = {
    T.SIGNED_UP: _Replay.signed_up, T.UPDATED: _Replay.updated, T.CHURNED: _Replay.churned,
    T.REACTIVATED: _Replay.reactivated, T.ORDER_PLACED: _Replay.order, T.ORDER_REFUNDED: _Replay.refund,
    T.ORDER_RETURNED: _Replay.returned_order, T.TICKET_OPENED: _Replay.ticket_opened,
    T.TICKET_REPLIED: _Replay.ticket_replied, T.TICKET_RESOLVED: _Replay.ticket_resolved,
    T.TICKET_REOPENED: _Replay.ticket_reopened, T.SURVEY_NPS: _Replay.nps, T.SURVEY_CSAT: _Replay.csat,
    T.FEEDBACK_RECEIVED: _Replay.feedback_received, T.FEEDBACK_RESPONDED: _Replay.feedback_responded,
    T.REP_JOINED: _Replay.rep_joined, T.REP_LEFT: _Replay.rep_left,
}


def derive(records: Iterable[Rec], ctx: Context) -> Derived:
    """Replay one key's records (sorted by event time) into its facts."""
    replay = _Replay(ctx)
    handlers = _HANDLERS
    for r in records:
        handlers[r.type](replay, r)
    return replay.finish()


