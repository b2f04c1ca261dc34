"""A worker's own share answers long questions on a thread, holding its store for as long as they take."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from fixtures import event
from pure_pipeline import PurePipeline

from core.periods import to_us
from metrics.store import Deferred
from streams.cluster.coordinator import LocalShare
from streams.follow.holds import Holds

AT = to_us(datetime(2025, 3, 1, tzinfo=UTC))


@pytest.mark.asyncio
async def test_a_long_answer_that_outlives_the_lease_keeps_the_follower_out_and_is_kept() -> None:
    store = PurePipeline().send(
        event("customer.signed_up", "2025-01-02T10:00:00Z", {"customer_id": "c1"}, id_="e1"),
        event("order.placed", "2025-01-03T10:00:00Z",
              {"customer_id": "c1", "order_id": "o1", "amount": 20, "currency": "EUR"}, id_="e2")).store
    holds = Holds(lease_s=0.2)
    share = LocalShare(store, lambda: frozenset({0, 1, 2, 3}), lambda: {0, 1, 2, 3}, holds)
    prepare = store.prepare

    def slow(questions: list[tuple[object, ...]]) -> Deferred | None:
        prepared = prepare(questions)
        if prepared is None:
            return None
        return Deferred(prepared.version, [lambda: (time.sleep(0.6), prepared())[1]])  # three leases long

    store.prepare = slow  # type: ignore[method-assign]
    writes: list[float] = []

    async def follower() -> None:  # waits for the store as the changelog follower does
        await asyncio.sleep(0.05)
        await holds.writable()
        writes.append(time.monotonic())

    began = time.monotonic()
    writer = asyncio.create_task(follower())
    answers = await share.ask([0, 1, 2, 3], [("clv_span", AT)], "s1")
    done = time.monotonic()
    await holds.release("s1")
    await writer
    assert answers[0][:2] == [1, 20_000_000]
    assert writes[0] >= done  # the follower wrote only after the answer, not when a lease ran out
    assert done - began >= 0.6
    store.prepare = prepare  # type: ignore[method-assign]
    assert store.prepare([("clv_span", AT)]) is None  # the thread's ranking was kept, not recomputed
