"""At-risk scoring for win-back: one customer's records and an instant become a score with reasons.

Design notes: docs/architecture.md, "metrics/risk.py".
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from core.periods import from_us
from metrics.records import Rec, T

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
DETRACTOR, COMPLAINT, FREQUENCY, REFUNDS, QUIET = (
    "detractor", "complaint_past_sla", "purchase_frequency_falling", "refunds", "gone_quiet")
CODES = (DETRACTOR, COMPLAINT, FREQUENCY, REFUNDS, QUIET)
DEFAULT_WEIGHTS: Mapping[str, int] = {DETRACTOR: 35, COMPLAINT: 35, FREQUENCY: 25, REFUNDS: 20,
                                      "gone_quiet_a": 40, "gone_quiet_b": 20, "gone_quiet_c": 10}
MIN_ORDERS = 3
# Not the customer's own doing: an agent's reply, a resolution, an answer to their feedback.
_NOT_OWN = (T.TICKET_RESOLVED, T.FEEDBACK_RESPONDED)


@dataclass(frozen=True)
class RiskPolicy:
    """Thresholds and weights (``risk_*`` settings); durations in µs."""

    threshold: int = 30
    weights: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    lookback_us: int = 90 * DAY_US
    complaint_sla_us: int = 48 * HOUR_US
    first_reply_sla_us: int = 24 * HOUR_US
    quiet_after_us: int = 60 * DAY_US
    frequency_factor: float = 2.0
    refunds_min: int = 2

    def quiet_weight(self, abc_class: str | None) -> int:
        """A customer without a class (not ranked yet) weighs like a C customer."""
        return self.weights[f"gone_quiet_{(abc_class or 'C').lower()}"]


@dataclass(frozen=True)
class Reason:
    """Why a customer is at risk: ``since_us`` is when this reason began to hold (continuously since)."""

    code: str
    weight: int
    detail: str
    since_us: int


@dataclass(frozen=True)
class Risk:
    """The score (0-100), its reasons (heaviest first), since when the customer has been at risk under
    them, and the next instant the score could change without a new record (``None``: never)."""

    active: bool
    score: int
    at_risk: bool
    reasons: tuple[Reason, ...]
    since_us: int | None
    next_check_us: int | None


@dataclass
class _Ticket:
    opened: int
    complaint: bool
    label: str
    unresolved_since: int
    waits_for_reply: bool = True
    resolved: bool = False


@dataclass
class _Walk:
    """What one pass over the records keeps."""

    status: T | None = None
    last_activity: int | None = None
    orders: list[int] = field(default_factory=list)
    nps: tuple[int, int] | None = None  # (time, score) of the latest response
    csat: tuple[int, int] | None = None
    refunded: dict[str, int] = field(default_factory=dict)  # order -> latest refund or return
    tickets: dict[str, _Ticket] = field(default_factory=dict)

    def lifecycle(self, r: Rec) -> None:
        # The same odd transitions facts.py ignores (a second sign-up, a churn of a lost customer…).
        s = self.status
        if (r.type is T.SIGNED_UP and s is None) or (r.type is T.CHURNED and s in (T.SIGNED_UP, T.REACTIVATED)) \
                or (r.type is T.REACTIVATED and s is T.CHURNED):
            self.status = r.type

    def ticket(self, r: Rec) -> None:
        ref = r.ref or ""
        ticket = self.tickets.get(ref)
        if r.type is T.TICKET_OPENED:
            if ticket is None:
                kind, _, category = (r.text or "request:").partition(":")
                label = f"{ref} ({category})" if category else ref
                self.tickets[ref] = _Ticket(r.time_us, kind == "complaint", label, r.time_us)
        elif ticket is None:
            return
        elif r.type is T.TICKET_REPLIED and r.text == "agent":
            ticket.waits_for_reply = False
        elif r.type is T.TICKET_RESOLVED and not ticket.resolved:
            ticket.resolved, ticket.waits_for_reply = True, False
        elif r.type is T.TICKET_REOPENED and ticket.resolved:
            ticket.resolved, ticket.unresolved_since = False, r.time_us

    def add(self, r: Rec) -> None:
        t = r.type
        if t not in _NOT_OWN and not (t is T.TICKET_REPLIED and r.text == "agent"):
            self.last_activity = r.time_us  # records are sorted: the last one seen is the latest
        if t <= T.REACTIVATED:
            self.lifecycle(r)
        elif t is T.ORDER_PLACED:
            self.orders.append(r.time_us)
        elif t in (T.ORDER_REFUNDED, T.ORDER_RETURNED):
            self.refunded[r.ref or ""] = r.time_us
        elif T.TICKET_OPENED <= t <= T.TICKET_REOPENED:
            self.ticket(r)
        elif t is T.SURVEY_NPS:
            self.nps = (r.time_us, r.value or 0)
        elif t is T.SURVEY_CSAT:
            self.csat = (r.time_us, r.value or 0)


def score(records: Sequence[Rec], now_us: int, abc_class: str | None, policy: RiskPolicy) -> Risk:
    """The at-risk score of one customer at ``now_us`` from its records (sorted by :meth:`Rec.sort_key`)."""
    cut = bisect.bisect_left(records, now_us, key=lambda r: r.time_us)
    later = [records[cut].time_us + 1] if cut < len(records) else []  # the next record starts to count then
    walk = _Walk()
    for r in records[:cut]:
        walk.add(r)
    if walk.status not in (T.SIGNED_UP, T.REACTIVATED):
        return Risk(False, 0, False, (), None, min(later, default=None))
    checks: list[int] = later
    found = [reason for reason in (_detractor(walk, now_us, policy, checks), _complaints(walk, now_us, policy, checks),
                                   _frequency(walk, now_us, policy, checks), _refunds(walk, now_us, policy, checks),
                                   _quiet(walk, now_us, abc_class, policy, checks))
             if reason is not None and reason.weight > 0]
    total = min(100, sum(r.weight for r in found))
    at_risk = total >= policy.threshold
    found.sort(key=lambda r: (-r.weight, r.code))
    return Risk(True, total, at_risk, tuple(found), _since(found, policy.threshold) if at_risk else None,
                min(checks, default=None))


def _since(reasons: list[Reason], threshold: int) -> int | None:
    """The first instant from which the reasons that hold now added up to the threshold."""
    weight = 0
    for reason in sorted(reasons, key=lambda r: r.since_us):
        weight += reason.weight
        if weight >= threshold:
            return reason.since_us
    return None


def _detractor(w: _Walk, now: int, p: RiskPolicy, checks: list[int]) -> Reason | None:
    parts: list[tuple[int, str]] = []
    for name, latest, worst in (("NPS", w.nps, 6), ("CSAT", w.csat, 2)):
        if latest is not None and latest[1] <= worst and now - latest[0] < p.lookback_us:
            parts.append((latest[0], f"{name} {latest[1]} on {day(latest[0])}"))
            checks.append(latest[0] + p.lookback_us)
    if not parts:
        return None
    return Reason(DETRACTOR, p.weights[DETRACTOR], "; ".join(text for _, text in parts), min(t for t, _ in parts))


def _complaints(w: _Walk, now: int, p: RiskPolicy, checks: list[int]) -> Reason | None:
    late: list[tuple[int, str]] = []  # (when the ticket broke an SLA, detail)
    for ticket in w.tickets.values():
        if not ticket.complaint or ticket.resolved:
            continue
        dues = [(ticket.unresolved_since + p.complaint_sla_us,
                 f"unresolved since {minute(ticket.unresolved_since)}, SLA {duration(p.complaint_sla_us)}")]
        if ticket.waits_for_reply:
            dues.append((ticket.opened + p.first_reply_sla_us,
                         f"no agent reply since {minute(ticket.opened)}, SLA {duration(p.first_reply_sla_us)}"))
        broken = [d for d in dues if d[0] <= now]
        checks.extend(due for due, _ in dues if due > now)
        if broken:
            at, why = min(broken)
            late.append((at, f"complaint {ticket.label} {why}"))
    if not late:
        return None
    late.sort()
    more = f" (+{len(late) - 1} more past SLA)" if len(late) > 1 else ""
    return Reason(COMPLAINT, p.weights[COMPLAINT], late[0][1] + more, late[0][0])


def _frequency(w: _Walk, now: int, p: RiskPolicy, checks: list[int]) -> Reason | None:
    orders = w.orders
    if len(orders) < MIN_ORDERS:
        return None
    gaps = sorted(b - a for a, b in pairwise(orders))
    mid = len(gaps) // 2
    median = gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) // 2
    span = int(p.frequency_factor * median)
    if span <= 0:  # orders at one instant tell nothing about a rhythm
        return None
    due = orders[-1] + span
    if now < due:
        checks.append(due)
        return None
    detail = (f"last order {day(orders[-1])}; {len(orders)} orders with a median gap of {duration(median)}, "
              f"none for {duration(span)} since")
    return Reason(FREQUENCY, p.weights[FREQUENCY], detail, due)


def _refunds(w: _Walk, now: int, p: RiskPolicy, checks: list[int]) -> Reason | None:
    if p.refunds_min <= 0:
        return None
    recent = sorted(t for t in w.refunded.values() if now - t < p.lookback_us)
    if len(recent) < p.refunds_min:
        return None
    # The count (and so the detail and since) changes as soon as the oldest leaves the lookback.
    checks.append(recent[0] + p.lookback_us)
    detail = f"{len(recent)} orders refunded or returned within {duration(p.lookback_us)}"
    return Reason(REFUNDS, p.weights[REFUNDS], detail, recent[p.refunds_min - 1])


def _quiet(w: _Walk, now: int, abc_class: str | None, p: RiskPolicy, checks: list[int]) -> Reason | None:
    if w.last_activity is None:
        return None
    due = w.last_activity + p.quiet_after_us
    if now < due:
        checks.append(due)
        return None
    detail = f"no activity since {day(w.last_activity)} ({abc_class or 'unranked'} customer)"
    return Reason(QUIET, p.quiet_weight(abc_class), detail, due)


def day(us: int) -> str:
    return from_us(us).strftime("%Y-%m-%d")


def minute(us: int) -> str:
    return from_us(us).strftime("%Y-%m-%dT%H:%MZ")


def duration(us: int) -> str:
    """``24h``, ``48h``, ``60d`` as settings write them (days from 3 days up), else with one decimal."""
    for unit, size in (("d", DAY_US), ("h", HOUR_US), ("m", 60 * US), ("s", US)):
        if us % size == 0 and us >= (3 * DAY_US if unit == "d" else size):
            return f"{us // size}{unit}"
    return f"{us / DAY_US:.1f}d" if us >= 3 * DAY_US else f"{us / HOUR_US:.1f}h"
