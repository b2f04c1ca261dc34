"""Bounded per-key state: records older than the history horizon are dropped or folded.

What stays exact for every period that starts at or after the horizon (``cutoff``): all of them,
including the lifetime figures (historical CLV, lifetime repeat purchase), because

- lifecycle and sales-rep records are always kept (they are few, and define who is active when);
- a customer's first two orders are kept; older orders beyond them fold into one synthetic order at
  the time of the newest folded one, carrying their summed amount — one per stretch between segment
  moves, so revenue to date stays with the segment it was made in (CLV to date is unchanged, and so
  is the "previous order before the period" that repeat purchase needs);
- refunds fold the same way into one synthetic refund; returns, surveys and feedback before the
  horizon are dropped (they only matter to periods before it);
- tickets are dropped only when all their records are before the horizon and they are resolved.

Periods that start before the horizon lose detail, and so do windows reaching back across it (the
90 days behind predicted CLV). A ticket, feedback item, or refunded/returned order id used again after
its first use was pruned counts as new. An event behind the horizon is ``too_late`` whatever its stream
(:mod:`metrics.lateness`), so an event whose id was pruned is rejected instead of being counted twice.
"""

from __future__ import annotations

from bisect import bisect_left

from metrics.records import Rec, T

_LIFECYCLE = frozenset([T.SIGNED_UP, T.UPDATED, T.CHURNED, T.REACTIVATED, T.REP_JOINED, T.REP_LEFT])
_MOVES = frozenset([T.SIGNED_UP, T.UPDATED])  # the lifecycle records that can change a customer's segments
_TICKET = frozenset([T.TICKET_OPENED, T.TICKET_REPLIED, T.TICKET_RESOLVED, T.TICKET_REOPENED])
FOLDED_ORDERS = "~folded-orders"
FOLDED_REFUNDS = "~folded-refunds"


def prune(records: list[Rec], cutoff: int) -> list[Rec]:
    """``records`` (sorted) without what only periods before ``cutoff`` need; unchanged if nothing is old."""
    if not records or records[0].time_us >= cutoff:
        return records
    old = [r for r in records if r.time_us < cutoff]
    keep = [r for r in old if r.type in _LIFECYCLE]
    keep += _fold(old, T.ORDER_PLACED, FOLDED_ORDERS, skip_first=2, records=records)
    keep += _fold(old, T.ORDER_REFUNDED, FOLDED_REFUNDS, skip_first=0, records=records)
    keep += _open_tickets(records, cutoff)
    out = keep + [r for r in records if r.time_us >= cutoff]
    out.sort(key=Rec.sort_key)
    return out


def _fold(old: list[Rec], type_: T, folded_id: str, skip_first: int, records: list[Rec]) -> list[Rec]:
    # The first records of this type overall stay as they are (a synthetic one is never among them).
    firsts = {r.id for r in [r for r in records if r.type is type_][:skip_first]}
    kept = [r for r in old if r.type is type_ and r.id in firsts]
    rest = [r for r in old if r.type is type_ and r.id not in firsts]
    if len(rest) <= 1:
        return kept + rest
    # Fold each stretch between two segment moves on its own: one sum at the newest time of all would
    # carry the older amounts into the segment the customer moved to (revenue to date per segment).
    moves = [r.sort_key() for r in records if r.type in _MOVES]
    stretches: dict[int, list[Rec]] = {}
    for r in rest:
        stretches.setdefault(bisect_left(moves, r.sort_key()), []).append(r)
    out = list(kept)
    for recs in stretches.values():
        if len(recs) == 1:
            out.append(recs[0])
            continue
        # Named by its time: stretches never share a newest time, and a lone synthetic keeps its name.
        name = f"{folded_id}@{recs[-1].time_us}"
        out.append(Rec(recs[-1].time_us, type_, name, ref=name, value=sum(r.value or 0 for r in recs)))
    return out


def _open_tickets(records: list[Rec], cutoff: int) -> list[Rec]:
    """The old records of tickets that still matter: open, reopened, or with records after ``cutoff``."""
    by_ticket: dict[str | None, list[Rec]] = {}
    for r in records:
        if r.type in _TICKET:
            by_ticket.setdefault(r.ref, []).append(r)
    out: list[Rec] = []
    for recs in by_ticket.values():
        opened = any(r.type is T.TICKET_OPENED for r in recs)
        done = recs[-1].time_us < cutoff and (recs[-1].type is T.TICKET_RESOLVED or not opened)
        if not done:
            out.extend(r for r in recs if r.time_us < cutoff)
    return out
