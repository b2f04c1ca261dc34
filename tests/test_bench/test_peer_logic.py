"""The peers' shared per-event work and Pathway's minibatch bookkeeping: pure, no framework, no Kafka."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.minibatch import Frontier
from bench.peer_logic import DUPLICATE, apply_event, bucket, new_record, owner, remember, update_customer


def event(event_id: str, kind: str, when: str, **data: Any) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "time": when, "data": {"customer_id": "c-1", **data}}


def test_owner_is_the_customer_or_the_rep() -> None:
    assert owner({"customer_id": "c-7", "rep_id": "r-1"}) == "c-7"
    assert owner({"rep_id": "r-1", "team": "north"}) == "rep:r-1"
    assert owner({"customer_id": "", "rep_id": "r-2"}) == "rep:r-2"


def test_bucket_is_the_event_time_day_and_type() -> None:
    assert bucket("order.placed", "2025-03-08T21:20:09.247Z") == "2025-03-08|order.placed"


def test_a_customer_through_its_lifecycle() -> None:
    record = new_record()
    steps = [
        event("e1", "customer.signed_up", "2025-01-01T00:00:00.000Z"),
        event("e2", "order.placed", "2025-01-03T10:00:00.000Z", amount=80.0),
        event("e3", "order.placed", "2025-01-02T10:00:00.000Z", amount=20.5),  # late: last order stays e2's
        event("e4", "order.refunded", "2025-01-04T00:00:00.000Z", amount=30.0),
        event("e5", "order.returned", "2025-01-05T00:00:00.000Z"),  # a return without an amount
        event("e6", "ticket.opened", "2025-01-06T00:00:00.000Z"),
        event("e7", "ticket.resolved", "2025-01-07T00:00:00.000Z"),
        event("e8", "ticket.resolved", "2025-01-08T00:00:00.000Z"),  # never below zero
        event("e9", "customer.churned", "2025-02-01T00:00:00.000Z", reason="price"),
    ]
    buckets = [update_customer(record, e) for e in steps]
    assert buckets[0] == "2025-01-01|customer.signed_up"
    assert buckets[8] == "2025-02-01|customer.churned"
    assert record == {
        "status": "lost", "since": "2025-02-01T00:00:00.000Z", "reason": "price", "orders": 2, "revenue": 70.5,
        "last_order": "2025-01-03T10:00:00.000Z", "open_tickets": 0,
        "counts": {"customer.signed_up": 1, "order.placed": 2, "order.refunded": 1, "order.returned": 1,
                   "ticket.opened": 1, "ticket.resolved": 2, "customer.churned": 1},
        "ids": [f"e{i}" for i in range(1, 10)],
    }  # fmt: skip
    update_customer(record, event("e10", "customer.reactivated", "2025-03-01T00:00:00.000Z"))
    assert (record["status"], record["since"], record["reason"]) == ("active", "2025-03-01T00:00:00.000Z", "price")


def test_a_seen_event_id_is_a_duplicate_and_changes_nothing() -> None:
    record = new_record()
    placed = event("e1", "order.placed", "2025-01-03T10:00:00.000Z", amount=80.0)
    assert update_customer(record, placed) == "2025-01-03|order.placed"
    before = json.dumps(record)
    assert update_customer(record, placed) == DUPLICATE
    assert update_customer(record, {**placed, "type": "ticket.opened"}) == DUPLICATE  # the id decides
    assert json.dumps(record) == before


def test_remember_and_apply_are_the_two_halves_of_update() -> None:
    record = new_record()
    assert remember(record, "e1")
    assert not remember(record, "e1")
    apply_event(record, "survey.nps", "2025-01-01T00:00:00.000Z", {"customer_id": "c-1", "score": 9})
    assert record["counts"] == {"survey.nps": 1}
    assert record["ids"] == ["e1"]


def test_new_records_share_nothing_and_stay_json() -> None:
    first, second = new_record(), new_record()
    update_customer(first, event("e1", "ticket.opened", "2025-01-06T00:00:00.000Z"))
    assert second == new_record()
    assert json.loads(json.dumps(first)) == first  # Quix keeps the record in RocksDB as JSON


def test_an_event_waits_until_every_output_closed_its_time() -> None:
    frontier = Frontier(["customers", "buckets"])
    assert frontier.done_until == -1
    assert not frontier.add(2, 1000)
    assert not frontier.add(2, 1001)
    assert not frontier.add(4, 1002)
    assert frontier.close("customers", 2) == []
    assert frontier.close("buckets", 4) == [1000, 1001]  # customers closed only 2 so far
    assert frontier.pending == 1
    assert frontier.close("customers", 6) == [1002]
    assert frontier.done_until == 4
    assert frontier.add(4, 1003)  # its time is closed already: done at once
    assert not frontier.add(6, 1004)
    assert frontier.close("buckets", 6) == [1004]
    assert frontier.pending == 0


def test_a_time_closed_again_or_earlier_never_goes_back() -> None:
    frontier = Frontier(["out"])
    frontier.close("out", 10)
    assert frontier.close("out", 4) == []
    assert frontier.done_until == 10
    with pytest.raises(KeyError):
        frontier.close("other", 12)
    with pytest.raises(ValueError, match="no outputs"):
        Frontier([])
