"""A worker's own share answers long questions on a thread: holding its store for as long as they take, or,
in a session that asks only long questions, keeping what it computed while the store goes on changing."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from fixtures import event
from pure_pipeline import PurePipeline

from core.periods import to_us
from metrics.exceptions import NotPinned
from metrics.store import Deferred
from streams.cluster.coordinator import PINNED, LocalShare
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
        return Deferred(prepared.version, [lambda: (started.set(), time.sleep(0.6), prepared())[2]])  # three leases

    store.prepare = slow  # type: ignore[method-assign]
    started = threading.Event()
    writes: list[float] = []

    async def follower() -> None:  # waits for the store as the changelog follower does
        assert await asyncio.to_thread(started.wait, 10)  # the long answer is being computed
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


@pytest.mark.asyncio
async def test_a_pinned_session_lets_the_follower_write_and_keeps_what_it_computed() -> None:
    p = PurePipeline().send(
        event("customer.signed_up", "2025-01-02T10:00:00Z", {"customer_id": "c1"}, id_="e1"),
        event("order.placed", "2025-01-03T10:00:00Z",
              {"customer_id": "c1", "order_id": "o1", "amount": 20, "currency": "EUR"}, id_="e2"))
    store = p.store
    holds = Holds(lease_s=0.2)
    share = LocalShare(store, lambda: frozenset({0, 1, 2, 3}), lambda: {0, 1, 2, 3}, holds)
    prepare = store.prepare

    def slow(questions: list[tuple[object, ...]], known: Any = None) -> Deferred | None:
        prepared = prepare(questions, known)
        if prepared is None:
            return None
        return Deferred(prepared.version, [lambda: (started.set(), time.sleep(0.6), prepared())[2]])

    store.prepare = slow  # type: ignore[method-assign]
    started = threading.Event()
    writes: list[float] = []

    async def follower() -> None:
        assert await asyncio.to_thread(started.wait, 10)  # the long answer is being computed
        await holds.writable()
        writes.append(time.monotonic())

    writer = asyncio.create_task(follower())
    first = await share.ask([0, 1, 2, 3], [("clv_span", AT)], PINNED + "s1")
    done = time.monotonic()
    await writer
    assert writes[0] < done - 0.3  # the follower did not wait for the ranking
    p.send(event("order.placed", "2025-01-04T10:00:00Z",
                 {"customer_id": "c1", "order_id": "o2", "amount": 5, "currency": "EUR"}, id_="e3"))
    assert first[0][:2] == [1, 20_000_000]
    again = await share.ask([0, 1, 2, 3], [("clv_span", AT)], PINNED + "s1")
    assert again == first  # the session's next round: the ranking it computed, not the store's new state
    await share.release(PINNED + "s1")
    fresh = await share.ask([0, 1, 2, 3], [("clv_span", AT)], PINNED + "s2")
    assert fresh[0][:2] == [1, 25_000_000]
    with pytest.raises(NotPinned):
        await share.ask([0, 1, 2, 3], [("count", "all", "order", None, AT)], PINNED + "s2")
