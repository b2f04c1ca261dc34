"""The at-risk tracker without Kafka (fake producer and follower, real states, real KPI store): the sweep of
a new partition, changes, timers, hand-overs, revocation, failed publishes and class changes (the
pieces around it: test_at_risk_parts.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from fixtures import event
from prometheus_client import CollectorRegistry
from pure_pipeline import PurePipeline

from core.periods import to_us
from core.settings import Settings
from metrics.abc_classes import AbcSummary, Cut
from metrics.planning import abc, run
from metrics.risk import DAY_US
from streams.apply.stores import MemoryStore
from streams.at_risk import tracker as risk_module
from streams.at_risk.registry import (
    AtRiskData,
    AtRiskReason,
    AtRiskRegistry,
    Classes,
    decode_event,
    encode_event,
    rfc3339,
)
from streams.at_risk.tracker import RiskMetrics, RiskTracker
from streams.wire import partition_of

SETTINGS = Settings(allowed_lateness="3650d", clock="event")
SOURCE = "retention-monitor/test"


class FakeProducer:
    """The ``Producer`` port: ``send(...)`` returns a future; records what was sent; can fail like Kafka."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.fail = False

    async def send(self, topic: str, value: bytes | None, *, key: bytes | None = None, partition: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[None]:
        assert value is not None
        assert key is not None
        assert partition is not None
        if self.fail:
            raise KafkaConnectionError("broker away")
        self.sent.append((topic, key, value, partition))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class World:
    """A pure pipeline whose states live in per-partition stores, a tracker on them, and a clock."""

    def __init__(self) -> None:
        self.pipeline = PurePipeline(SETTINGS)
        self.stores = {p: MemoryStore(p) for p in range(SETTINGS.partitions)}
        self.producer = FakeProducer()
        self.registry = AtRiskRegistry(SOURCE)
        self.synced: list[int] = []
        self.now: int | None = None

        async def store(partition: int) -> MemoryStore:
            return self.stores[partition]

        async def sync(partition: int) -> None:
            self.synced.append(partition)

        follower = SimpleNamespace(caught_up=True, sync=sync)
        apply = SimpleNamespace(stores=self.stores, store=store)
        async def ranking(at_us: int) -> tuple[list[Cut], AbcSummary]:
            return run(abc(at_us, SETTINGS.storage.abc_thresholds), self.pipeline.ask)

        classes = Classes(self.pipeline.store, ranking)
        self.tracker = RiskTracker(SETTINGS.risk, SETTINGS.topics, apply=apply, producer=self.producer,  # type: ignore[arg-type]
                                   classes=classes, follower=follower, registry=self.registry,
                                   source=SOURCE, now_us=lambda: self.now, kpi_ready=lambda: True,
                                   metrics=RiskMetrics.create(CollectorRegistry()))

    def send(self, *events: dict[str, Any]) -> list[tuple[int, list[bytes]]]:
        """Apply events; the keys whose states were written, by partition, as the apply stage hands
        them to the tracker."""
        self.pipeline.send(*events)
        changed: dict[int, list[bytes]] = {}
        for ev in events:
            key = ev["data"]["customer_id"].encode()
            p = partition_of(key, SETTINGS.partitions)
            self.stores[p].write([(key, self.pipeline.stored(key))], self.stores[p].next_offset + 1)
            changed.setdefault(p, []).append(key)
        return list(changed.items())

    def changed(self, *events: dict[str, Any]) -> None:
        """Apply events and tell the tracker, as the apply stage does."""
        for partition, keys in self.send(*events):
            self.tracker.changed(partition, keys)

    async def settle(self) -> list[AtRiskData]:
        """Run the tracker until it has nothing left to do; the events it published meanwhile."""
        before = len(self.producer.sent)
        for _ in range(100):
            if not await self.tracker.tick():
                break
        published = [decode_event(value) for _, _, value, _ in self.producer.sent[before:]]
        for _, _, value, _ in self.producer.sent[before:]:
            self.registry.apply(value)  # as the follower would read it back
        return [e.data for e in published]


def at(day: float) -> int:
    return to_us(datetime(2025, 1, 1, tzinfo=UTC)) + int(day * DAY_US)


def iso(day: float) -> str:
    return rfc3339(at(day))


def signup(cid: str) -> dict[str, Any]:
    return event("customer.signed_up", iso(0), {"customer_id": cid})


def nps(cid: str, day: float, score: int) -> dict[str, Any]:
    return event("survey.nps", iso(day), {"customer_id": cid, "score": score})


def complaint(cid: str, day: float) -> dict[str, Any]:
    return event("ticket.opened", iso(day), {"customer_id": cid, "ticket_id": "t", "kind": "complaint"})


@pytest.fixture
def world() -> World:
    w = World()
    w.send(signup("det"), signup("ok"), signup("cmp"), nps("det", 10, 2), nps("ok", 10, 10), complaint("cmp", 11))
    w.now = at(11) + DAY_US // 2  # the complaint is 12 hours old: within its 24h reply SLA
    return w


def statuses(published: list[AtRiskData]) -> list[tuple[str, bool, int]]:
    return [(d.customer_id, d.at_risk, d.score) for d in published]


@pytest.mark.asyncio
async def test_a_new_partition_is_swept_then_time_alone_changes_a_score(world: World) -> None:
    world.tracker.assigned(frozenset(range(4)))
    assert statuses(await world.settle()) == [("det", True, 35)]
    assert sorted(world.synced) == [0, 1, 2, 3]  # read what earlier owners published before sweeping
    (topic, key, _, partition), = world.producer.sent
    assert (topic, key, partition) == (SETTINGS.topic_at_risk, b"det", partition_of(b"det", 4))
    assert world.tracker.due.get(b"cmp") == at(12)  # its reply SLA
    world.now = at(12)
    assert statuses(await world.settle()) == [("cmp", True, 35)]  # no event: the timer
    assert await world.settle() == []  # nothing new to say


@pytest.mark.asyncio
async def test_changes_are_scored_and_a_recovery_is_published(world: World) -> None:
    world.tracker.assigned(frozenset(range(4)))
    await world.settle()
    world.changed(nps("det", 11, 9))
    world.now = at(11) + DAY_US // 2 + 1
    (recovered,) = await world.settle()
    assert (recovered.customer_id, recovered.at_risk, recovered.active, recovered.reasons) == ("det", False, True, ())
    assert "det" not in world.registry.customers
    world.changed(nps("ok", 11, 9))
    assert await world.settle() == []  # scored, nothing to publish


@pytest.mark.asyncio
async def test_a_taken_over_partition_corrects_what_its_previous_owner_published(world: World) -> None:
    stale = AtRiskData("ok", True, True, 35, 30, "C", "2025-01-11T00:00:00Z",
                       (AtRiskReason("detractor", 35, "NPS 1 on 2025-01-11", "2025-01-11T00:00:00Z"),))
    world.registry.apply(encode_event(stale, at(11), SOURCE))
    world.tracker.assigned(frozenset(range(4)))
    assert sorted(statuses(await world.settle())) == [("det", True, 35), ("ok", False, 0)]
    # partitions moving away are forgotten; coming back, they are synced and swept again
    gone = {p for p in range(4) if p != partition_of(b"det", 4)}
    world.tracker.assigned(frozenset(range(4)) - gone)
    assert world.tracker.pending == []
    assert {partition_of(k, 4) for k in world.tracker.due.scheduled()} <= set(range(4)) - gone
    world.synced.clear()
    world.tracker.assigned(frozenset(range(4)))
    assert await world.settle() == []  # det still at risk, as published: nothing to say again
    assert sorted(world.synced) == sorted(gone)


@pytest.mark.asyncio
async def test_revocation_pauses_publishing_until_the_next_assignment(world: World) -> None:
    world.tracker.assigned(frozenset(range(4)))
    await world.settle()
    await world.tracker.revoked()
    world.changed(nps("det", 11, 10))
    assert await world.settle() == []
    world.tracker.assigned(frozenset(range(4)))
    assert statuses(await world.settle()) == [("det", False, 0)]


@pytest.mark.asyncio
async def test_a_failed_publish_is_decided_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(risk_module, "RETRY_S", 0.0)
    world.producer.fail = True
    world.tracker.assigned(frozenset(range(4)))
    assert await world.settle() == []
    assert b"det" not in world.tracker.published  # taken back
    world.producer.fail = False
    assert statuses(await world.settle()) == [("det", True, 35)]


@pytest.mark.asyncio
async def test_a_partition_whose_sync_failed_is_swept_on_the_next_attempt(world: World) -> None:
    calls: list[int] = []

    async def flaky_sync(partition: int) -> None:
        calls.append(partition)
        if len(calls) == 1:
            raise KafkaConnectionError("broker away")

    world.tracker.follower.sync = flaky_sync  # type: ignore[method-assign]
    world.tracker.assigned(frozenset(range(4)))
    with pytest.raises(KafkaConnectionError):  # the task restarts run() after a backoff
        await world.tracker.tick()
    assert world.tracker.pending == [0, 1, 2, 3]
    assert statuses(await world.settle()) == [("det", True, 35)]
    assert calls == [0, 0, 1, 2, 3]


@pytest.mark.asyncio
async def test_a_class_change_alone_updates_an_at_risk_customer() -> None:
    w = World()
    # "big" goes quiet as the only customer with orders: class A (40) -> at risk
    w.send(signup("big"), signup("small"), event("order.placed", iso(1), {"customer_id": "big", "order_id": "b",
                                                                          "amount": 100, "currency": "EUR"}))
    w.now = at(70)
    w.tracker.assigned(frozenset(range(4)))
    (first,) = await w.settle()
    assert (first.customer_id, first.abc_class, first.score) == ("big", "A", 40)
    # another customer's large order moves big to C: quiet now weighs 10, below the threshold
    w.send(event("order.placed", iso(69), {"customer_id": "small", "order_id": "s", "amount": 10_000,
                                           "currency": "EUR"}))
    w.tracker.classes.next_at = 0.0
    (second,) = await w.settle()
    assert (second.customer_id, second.at_risk, second.abc_class, second.score) == ("big", False, "C", 10)
