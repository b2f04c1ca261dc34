"""Bounded per-key state: records older than the history horizon are dropped or folded.

Design notes: docs/architecture.md, "metrics/prune.py".
"""

from __future__ import annotations

from bisect import bisect_left

from metrics.records import Rec, T

_LIFECYCLE = frozenset([T.SIGNED_UP, T.UPDATED, T.CHURNED, T.REACTIVATED, T.REP_JOINED, T.REP_LEFT])
_MOVES = frozenset([T.SIGNED_UP, T.UPDATED])  # the lifecycle records that can change a customer's segments
_TICKET = frozenset([T.TICKET_OPENED, T.TICKET_REPLIED, T.TICKET_RESOLVED, T.TICKET_REOPENED])
FOLDED_ORDERS = "~folded-orders"
FOLDED_REFUNDS = "~folded-refunds"


def prune(records: list[Rec], cutoff: int, history_us: int = 0) -> list[Rec]:
    """``records`` (sorted) without what only periods before ``cutoff`` need; unchanged if nothing is old.
    A resolved ticket stays ``history_us`` longer: until then a reply or reopen of it still counts."""
    if not records or records[0].time_us >= cutoff:
        return records
    old = [r for r in records if r.time_us < cutoff]
    keep = [r for r in old if r.type in _LIFECYCLE]
    keep += _fold(old, T.ORDER_PLACED, FOLDED_ORDERS, skip_first=2, records=records)
    keep += _fold(old, T.ORDER_REFUNDED, FOLDED_REFUNDS, skip_first=0, records=records)
    keep += _open_tickets(records, cutoff, cutoff - history_us)
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


def _open_tickets(records: list[Rec], cutoff: int, closed_before: int) -> list[Rec]:
    """The old records of tickets that still matter: open, reopened, resolved since ``closed_before``, or
    with records after ``cutoff``; records of tickets never opened only until ``cutoff``."""
    by_ticket: dict[str | None, list[Rec]] = {}
    for r in records:
        if r.type in _TICKET:
            by_ticket.setdefault(r.ref, []).append(r)
    out: list[Rec] = []
    for recs in by_ticket.values():
        opened = any(r.type is T.TICKET_OPENED for r in recs)
        last = recs[-1]
        done = last.type is T.TICKET_RESOLVED and last.time_us < closed_before if opened else last.time_us < cutoff
        if not done:
            out.extend(r for r in recs if r.time_us < cutoff)
    return out
