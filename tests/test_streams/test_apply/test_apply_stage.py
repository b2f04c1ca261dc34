"""The apply stage's real code over the in-memory log: one changelog entry per changed key, a
restarted stage restores its states from the changelog, and a failed batch is retried from what the
changelog holds, never from a state the log does not have."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
from fixtures import encode, event

from core.settings import Settings
from metrics.records import decode_state
from streams.apply.processor import Processor
from streams.apply.stage import ApplyStage, Counts
from streams.apply.stores import MemoryStore
from streams.exceptions import StoreBehind
from streams.memory import LogUnavailable, MemoryLog, Message, Partition
from streams.route.dead_letters import DeadLetters
from streams.route.stage import RouteStage
from streams.wire import decode_change, partition_of

SETTINGS = Settings(allowed_lateness="1d")
TOPICS = SETTINGS.topics


def new_stage(log: MemoryLog, counts: list[Counts]) -> ApplyStage:
    letters = DeadLetters(log, TOPICS.dlq, lambda reasons: None)
    return ApplyStage(processor=Processor(SETTINGS.facts), producer=log, reader=log, changelog=TOPICS.changelog,
                      store_url="memory://", data_dir=Path("/nonexistent"), reject=letters.reject,
                      on_counts=counts.append)


async def route(log: MemoryLog, *events: dict[str, object]) -> list[tuple[int, bytes, float]]:
    """The packs the route stage writes for ``events`` (so the apply stage gets real packs)."""
    before = {p: len(log.messages(TOPICS.rekeyed, p)) for p in range(TOPICS.partitions)}
    letters = DeadLetters(log, TOPICS.dlq, lambda reasons: None)
    stage = RouteStage(recorder=Processor(SETTINGS.facts).recorder, producer=log, rekeyed=TOPICS.rekeyed,
                       partitions=TOPICS.partitions, dead_letters=letters, max_bytes=1 << 20)
    await stage.handle({Partition(TOPICS.lifecycle, 0): [Message(None, encode(e), i) for i, e in enumerate(events)]})
    return [(p, m.value or b"", 0.0) for p in range(TOPICS.partitions)
            for m in log.messages(TOPICS.rekeyed, p)[before[p]:]]


def signup(customer: str, time: str = "2025-01-05T10:00:00Z", id_: str | None = None) -> dict[str, object]:
    return event("customer.signed_up", time, {"customer_id": customer}, id_=id_)


def test_one_changelog_entry_per_changed_key_and_the_state_restores_from_it() -> None:
    async def run() -> None:
        log, counts = MemoryLog(TOPICS.partitions), []
        stage = new_stage(log, counts)
        await stage.handle(await route(log, signup("a"), signup("b"), signup("a", id_="dup")))
        key = b"a"
        p = partition_of(key, TOPICS.partitions)
        entries = [m for m in log.messages(TOPICS.changelog, p) if m.key == key]
        assert len(entries) == 1  # two events of a in one batch: one entry
        assert sum(c.events["customer.signed_up"] for c in counts) == 3
        restarted = new_stage(log, [])
        store = await restarted.store(p)
        assert store.get(key) == decode_change(entries[0].value or b"").state
        assert p in restarted.trusted()

    asyncio.run(run())


def test_a_too_late_event_is_dead_lettered_as_published() -> None:
    async def run() -> None:
        log = MemoryLog(TOPICS.partitions)
        stage = new_stage(log, [])
        await stage.handle(await route(log, signup("a", "2025-03-01T00:00:00Z")))
        late = event("customer.updated", "2025-02-01T00:00:00Z", {"customer_id": "a", "segment": {"plan": "pro"}})
        await stage.handle(await route(log, late))
        letters = log.everything(TOPICS.dlq)
        assert [dict(m.headers)["reason"] for m in letters] == [b"too_late"]
        assert letters[0].value == encode(late)

    asyncio.run(run())


def test_a_failed_batch_leaves_no_state_the_changelog_does_not_have() -> None:
    async def run() -> None:
        log = MemoryLog(TOPICS.partitions)
        stage = new_stage(log, [])
        first = await route(log, signup("a"))
        await stage.handle(first)
        p = partition_of(b"a", TOPICS.partitions)
        update = event("customer.updated", "2025-01-06T10:00:00Z", {"customer_id": "a", "segment": {"plan": "pro"}})
        packs = await route(log, update)
        log.fail = True
        with pytest.raises(LogUnavailable):
            await stage.handle(packs)
        assert p not in stage.trusted()  # re-read before the next attempt
        log.fail = False
        await stage.handle(packs)
        entries = log.messages(TOPICS.changelog, p)
        assert len(entries) == 2  # the failed attempt wrote nothing the retry repeats
        state = decode_state((await stage.store(p)).get(b"a"))
        assert len(state.records) == 2
        assert decode_change(entries[-1].value or b"").state == (await stage.store(p)).get(b"a")

    asyncio.run(run())


def test_a_customer_s_packs_in_one_turn_end_in_the_states_of_one_turn_each() -> None:
    """A turn applies all of a partition's packs in one call: the later packs of a customer must build
    on the states the earlier ones made, though those reach the store only once acknowledged."""
    plans = ("free", "pro", "team")
    changes = [signup(c, "2025-01-01T10:00:00Z") for c in ("a", "b")] + [
        event("customer.updated", f"2025-01-0{day}T10:00:00Z", {"customer_id": c, "segment": {"plan": plans[day % 3]}})
        for day in range(2, 8) for c in ("a", "b")]

    async def states(together: bool) -> dict[bytes, bytes | None]:
        log = MemoryLog(TOPICS.partitions)
        stage = new_stage(log, [])
        packs = []
        for change in changes:  # one pack each
            packs.append(await route(log, change))
        for turn in ([[pack for made in packs for pack in made]] if together else packs):
            await stage.handle(turn)
        got = {key: (await stage.store(partition_of(key, TOPICS.partitions))).get(key) for key in (b"a", b"b")}
        stage.close()
        return got

    one_turn, turns = asyncio.run(states(True)), asyncio.run(states(False))
    assert one_turn == turns
    assert all(len(decode_state(state).records) == 7 for state in one_turn.values() if state is not None)
    assert None not in one_turn.values()


class BrokenStore(MemoryStore):
    """A store whose writes wait for ``gate`` and then fail while ``broken`` (a full disk, say)."""

    def __init__(self, partition: int) -> None:
        super().__init__(partition)
        self.broken = False
        self.gate = threading.Event()
        self.gate.set()

    def write(self, items: Iterable[tuple[bytes, bytes | None]], next_offset: int) -> None:
        assert self.gate.wait(10)
        if self.broken:
            raise OSError("no space left on device")
        super().write(items, next_offset)


def update(customer: str, day: int) -> dict[str, object]:
    return event("customer.updated", f"2025-01-{day:02d}T10:00:00Z", {"customer_id": customer,
                                                                      "segment": {"plan": f"plan-{day}"}})


async def signed_up(customer: str) -> tuple[MemoryLog, ApplyStage, BrokenStore]:
    """A stage whose store of ``customer``'s partition breaks on demand, after the sign-up is stored."""
    log = MemoryLog(TOPICS.partitions)
    stage = new_stage(log, [])
    p = partition_of(customer.encode(), TOPICS.partitions)
    store = stage.stores[p] = BrokenStore(p)
    await stage.handle(await route(log, signup(customer)))
    await stage.settled()
    return log, stage, store


def test_a_turn_whose_states_miss_the_store_is_redone_from_the_changelog() -> None:
    """The states reach the store after the turn returned; if they cannot, the partition re-reads its
    changelog before its next turn, and the next turn builds on every acknowledged state."""
    async def run() -> None:
        log, stage, store = await signed_up("d")
        p = store.partition
        store.broken = True
        other = next(c for c in "abcefgh" if partition_of(c.encode(), TOPICS.partitions) > p)  # written after d's
        await stage.handle(await route(log, update("d", 6), signup(other)))  # acknowledged; d's not stored
        await stage.settled()
        assert p not in stage.trusted()
        assert partition_of(other.encode(), TOPICS.partitions) in stage.trusted()  # its partition's write went on
        assert stage.stores[partition_of(other.encode(), TOPICS.partitions)].get(other.encode()) is not None
        store.broken = False
        await stage.handle(await route(log, update("d", 7)))
        state = decode_state((await stage.store(p)).get(b"d"))
        assert [r.time_us for r in state.records] == sorted(r.time_us for r in state.records)
        assert len(state.records) == 3
        assert decode_change(log.messages(TOPICS.changelog, p)[-1].value or b"").state == store.get(b"d")

    asyncio.run(run())


def test_a_turn_queued_behind_a_failed_write_fails_and_its_retry_re_reads_the_changelog() -> None:
    async def run() -> None:
        log, stage, store = await signed_up("a")
        p = store.partition
        second, third = await route(log, update("a", 6)), await route(log, update("a", 7))
        store.broken = True
        store.gate.clear()  # the second turn's write waits on the thread
        await stage.handle(second)
        turn = asyncio.ensure_future(stage.handle(third))
        for _ in range(3):  # the third turn runs up to its apply, which waits on the thread behind the write
            await asyncio.sleep(0)
        store.gate.set()
        with pytest.raises(StoreBehind):
            await turn
        store.broken = False
        await stage.handle(third)
        state = decode_state((await stage.store(p)).get(b"a"))
        assert len(state.records) == 3

    asyncio.run(run())
