"""The per-event work of the peers (Quix Streams, Bytewax, Pathway), in one copy.

Re-key by owner, dedupe by event id and update one customer's record, name the (event-time day,
type) bucket to count. Pure: no framework, no Kafka, no clock. Each peer keeps the record in its own
state store and calls these, so the peers differ only in how their framework carries the work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DUPLICATE = "duplicate"  # the bucket of an event whose id the customer has seen already
Record = dict[str, Any]  # plain JSON values only: Quix keeps it in RocksDB as JSON


def owner(data: Mapping[str, Any]) -> str:
    """The re-key of an event's ``data``: the customer, or ``rep:<id>`` like the monitor's ``partition_key``."""
    customer: str | None = data.get("customer_id")
    return customer if customer else "rep:" + data["rep_id"]


def bucket(kind: str, when: str) -> str:
    """The (event-time day, type) bucket an event is counted in."""
    return f"{when[:10]}|{kind}"


def new_record() -> Record:
    """A customer no event has touched yet."""
    return {"status": None, "since": None, "reason": None, "orders": 0, "revenue": 0.0, "last_order": None,
            "open_tickets": 0, "counts": {}, "ids": []}  # fmt: skip


def remember(record: Record, event_id: str) -> bool:
    """The dedupe: False if the customer has seen ``event_id`` already, else keep it and True."""
    ids: list[str] = record["ids"]
    if event_id in ids:
        return False
    ids.append(event_id)
    return True


def apply_event(record: Record, kind: str, when: str, data: Mapping[str, Any]) -> None:
    """One event's update of the customer: lifecycle status and since-when, churn reason, orders,
    net revenue, last order time, open tickets and the count per type."""
    if kind in ("customer.signed_up", "customer.reactivated"):
        record["status"], record["since"] = "active", when
    elif kind == "customer.churned":
        record["status"], record["since"], record["reason"] = "lost", when, data.get("reason")
    elif kind == "order.placed":
        record["orders"] += 1
        record["revenue"] += data["amount"]
        # RFC 3339 times in UTC with a Z compare correctly as strings (the simulator writes only those).
        record["last_order"] = max(record["last_order"] or when, when)
    elif kind in ("order.refunded", "order.returned"):
        record["revenue"] -= data.get("amount") or 0.0  # a return may carry no amount
    elif kind == "ticket.opened":
        record["open_tickets"] += 1
    elif kind == "ticket.resolved":
        record["open_tickets"] = max(0, record["open_tickets"] - 1)
    counts: dict[str, int] = record["counts"]
    counts[kind] = counts.get(kind, 0) + 1


def update_customer(record: Record, event: Mapping[str, Any]) -> str:
    """Dedupe and apply one decoded event to its customer's ``record``; the bucket to count, or DUPLICATE."""
    kind, when = event["type"], event["time"]
    if not remember(record, event["id"]):
        return DUPLICATE
    apply_event(record, kind, when, event["data"])
    return bucket(kind, when)
