"""The follower over a changelog in memory: it reads the partitions it is assigned, forgets those it
gives away, and counts a partition as caught up only once it has read it again after getting it back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from fixtures import event
from pure_pipeline import PurePipeline

from core.settings import Settings
from streams.follow.follower import ChangelogFollower
from streams.follow.holds import Holds
from streams.memory import MemoryLog

TOPIC = Settings().topics.changelog


class LogConsumer:
    """The part of an aiokafka consumer the follower uses, reading a :class:`MemoryLog`."""

    def __init__(self, log: MemoryLog) -> None:
        self.log = log
        self.assigned: list[TopicPartition] = []
        self.next: dict[TopicPartition, int] = {}

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def topics(self) -> set[str]:
        return {TOPIC}

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: (await self.log.bounds(TOPIC, tp.partition))[0] for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: (await self.log.bounds(TOPIC, tp.partition))[1] for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.next[tp] = offset

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0.001)
        out = {}
        for tp in self.assigned:
            records = [m for m in self.log.messages(TOPIC, tp.partition) if m.offset >= self.next.get(tp, 0)][:3]
            if records:
                out[tp] = records
                self.next[tp] = records[-1].offset + 1
        return out


def changelog() -> tuple[PurePipeline, MemoryLog]:
    """A pure pipeline's changelog of a few customers on every partition."""
    p = PurePipeline()
    p.send(*(event("customer.signed_up", "2025-01-05T10:00:00Z", {"customer_id": f"c{i}"}) for i in range(24)))
    return p, p.log


@contextlib.contextmanager
def following(log: MemoryLog, follower: ChangelogFollower) -> Iterator[asyncio.Task[None]]:
    task = asyncio.get_running_loop().create_task(follower.run())
    try:
        yield task
    finally:
        task.cancel()


async def until(check: Any, what: str) -> None:
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.asyncio
async def test_a_partition_given_away_and_back_is_caught_up_only_once_read_again() -> None:
    pure, log = changelog()
    store = type(pure.store)(pure.store.ctx)
    follower = ChangelogFollower(lambda: LogConsumer(log), TOPIC, store, Holds())  # type: ignore[arg-type, return-value]
    with following(log, follower):
        follower.assign(frozenset(range(4)))
        await until(lambda: follower.caught_up, "all four partitions read")
        assert store.customers() == 24
        follower.assign(frozenset({2, 3}))  # two partitions move to another worker
        await until(lambda: store.partitions() == {2, 3}, "the given-away partitions forgotten")
        await asyncio.sleep(0.01)  # a few more turns of the loop
        assert follower.caught == {2, 3}
        follower.assign(frozenset(range(4)))  # and come back
        assert not follower.caught_up
        await until(lambda: follower.caught_up, "the returned partitions read again")
        assert store.customers() == 24
        assert store.partitions() == {0, 1, 2, 3}


@pytest.mark.asyncio
async def test_nothing_is_applied_while_an_answer_holds_the_store() -> None:
    pure, log = changelog()
    store = type(pure.store)(pure.store.ctx)
    holds = Holds(lease_s=5.0)
    follower = ChangelogFollower(lambda: LogConsumer(log), TOPIC, store, holds)  # type: ignore[arg-type, return-value]
    await holds.hold("answer")
    with following(log, follower):
        follower.assign(frozenset(range(4)))
        await asyncio.sleep(0.05)
        assert store.customers() == 0  # held
        await holds.release("answer")
        await until(lambda: follower.caught_up, "everything read after the release")
        assert store.customers() == 24
