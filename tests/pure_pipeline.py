"""What a worker does, minus Kafka: the real route and apply stages over an in-memory log and the
changelog read into KPI stores as the follower does (the unit and property tests' pipeline)."""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.periods import parse_period
from core.settings import Settings
from core.slices import FactSettings
from metrics.planning import run
from metrics.questions import Question, ask_all
from metrics.records import CustomerState, decode_state
from metrics.store import KpiStore, answer_plan
from streams.apply.processor import Processor
from streams.apply.stage import ApplyStage, Counts
from streams.contract.decode import Event, decode
from streams.follow.follower import apply_entries
from streams.memory import MemoryLog, Message, Partition
from streams.ports import Batch
from streams.route.dead_letters import DeadLetters
from streams.route.stage import RouteStage
from streams.wire import partition_of

# -- the worker's logic without Kafka: processor + table dict + KPI store -------------------------


def encode(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev, separators=(",", ":")).encode()


_loops: list[asyncio.AbstractEventLoop] = []


def _stage_loop() -> asyncio.AbstractEventLoop:
    """One event loop in a thread of its own for every pure pipeline: tests that run a loop themselves
    can use one too (a loop cannot run inside another)."""
    if not _loops:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="pure-pipeline", daemon=True)
        thread.start()

        def close() -> None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()

        atexit.register(close)
        _loops.append(loop)
    return _loops[0]


class PurePipeline:
    """What a worker does, minus Kafka: the real route and apply stages over an in-memory log, and the
    changelog read into a KPI store as the follower does.

    Each ``send`` is one fetch of the route stage and one batch of the apply stage. ``workers`` > 1
    splits the partitions over several apply stages and KPI stores (as over worker processes, each
    following its own partitions); answers merge every store's, as the cluster does.
    """

    def __init__(self, settings: Settings | None = None, workers: int = 1,
                 on_entry: Callable[[int, bytes, bytes], None] | None = None,
                 processor: Callable[[FactSettings], Processor] = Processor, deferred: bool = False) -> None:
        self.settings = settings or Settings(allowed_lateness="3650d")
        self.deferred = deferred  # long answers computed on another thread, as a worker does
        self.on_entry = on_entry
        self.topics = self.settings.topics
        self.log = MemoryLog(self.topics.partitions)
        self.processor = processor(self.settings.facts)
        thresholds = self.settings.storage.abc_thresholds
        self.stores = [KpiStore(self.processor.ctx, thresholds) for _ in range(workers)]
        self.store = self.stores[0]  # all of it, with one worker
        self.statuses: list[str] = []
        self._counts: list[Counts] = []
        self._rejected: dict[str, int] = {}
        letters = DeadLetters(self.log, self.topics.dlq, self._count_rejected)
        self.route = RouteStage(recorder=self.processor.recorder, producer=self.log, rekeyed=self.topics.rekeyed,
                                partitions=self.topics.partitions, dead_letters=letters,
                                max_bytes=self.settings.max_message_bytes)
        self.stages = [ApplyStage(processor=processor(self.settings.facts), producer=self.log, reader=self.log,
                                  changelog=self.topics.changelog, store_url="memory://", data_dir=Path("/nonexistent"),
                                  reject=letters.reject, on_counts=self._counts.append) for _ in range(workers)]
        self._input = 0
        self._followed = [0] * self.topics.partitions

    def _count_rejected(self, reasons: dict[str, int]) -> None:
        for reason, n in reasons.items():
            self._rejected[reason] = self._rejected.get(reason, 0) + n

    def send(self, *events: dict[str, Any]) -> PurePipeline:
        """Events that must be valid, one at a time; ``statuses`` gets each one's outcome."""
        for ev in events:
            value = encode(ev)
            assert isinstance(decode(value, frozenset(self.settings.rates)), Event), ev
            self.statuses.append(self._run([value]))
        return self

    def send_batch(self, *events: dict[str, Any]) -> PurePipeline:
        """Events as one fetch (several events of a key are applied together, as in a worker)."""
        self._run([encode(ev) for ev in events])
        return self

    def send_bytes(self, *values: bytes | None, max_bytes: int = 1_048_576) -> tuple[int, int]:
        """Messages as a worker receives them, in one fetch: ``(valid, rejected)``."""
        self.route.max_bytes = max_bytes
        before = sum(self._rejected.values())
        self._run(list(values))
        rejected = sum(self._rejected.values()) - before
        return len(values) - rejected, rejected

    def _run(self, values: list[bytes | None]) -> str:
        """One fetch through route and apply and the changelog into the store; the last outcome."""
        self._counts.clear()
        rejected_before = dict(self._rejected)
        batch = {Partition("input", 0): [Message(None, v, self._input + i) for i, v in enumerate(values)]}
        self._input += len(values)
        asyncio.run_coroutine_threadsafe(self._through(batch), _stage_loop()).result()
        self._follow()
        late = {r: n - rejected_before.get(r, 0) for r, n in self._rejected.items() if n > rejected_before.get(r, 0)}
        if late:
            return next(iter(late))
        if any(c.duplicates for c in self._counts):
            return "duplicate"
        return "ignored" if any(c.ignored for c in self._counts) else "applied"

    async def _through(self, batch: Batch) -> None:
        packed = {p: len(self.log.messages(self.topics.rekeyed, p)) for p in range(self.topics.partitions)}
        await self.route.handle(batch)
        packs = [(p, m.value or b"", 0.0) for p in range(self.topics.partitions)
                 for m in self.log.messages(self.topics.rekeyed, p)[packed[p]:]]
        for i, stage in enumerate(self.stages):
            mine = [pack for pack in packs if pack[0] % len(self.stages) == i]
            if mine:
                await stage.handle(mine)
                await stage.settled()  # the states reach the store after the turn

    def _follow(self) -> None:
        for p in range(self.topics.partitions):
            entries = self.log.messages(self.topics.changelog, p)[self._followed[p]:]
            self._followed[p] += len(entries)
            apply_entries(self.stores[p % len(self.stores)], p, entries)  # as the worker's follower does
            for m in entries:
                assert m.key is not None
                assert m.value is not None
                if self.on_entry is not None:
                    self.on_entry(p, m.key, m.value)

    def stored(self, key: bytes) -> bytes:
        """The stored state of ``key`` in whichever apply stage owns it."""
        partition = partition_of(key, self.topics.partitions)
        state = self.stages[partition % len(self.stages)].stores[partition].get(key)
        if state is None:
            raise KeyError(key)
        return state

    def state(self, key: bytes) -> CustomerState:
        return decode_state(self.stored(key))

    def dead_letters(self) -> list[Message]:
        return self.log.everything(self.topics.dlq)

    def ask(self, questions: list[Question]) -> list[Any]:
        """The merged answers of every worker's KPI store, as a cluster gives them."""
        if self.deferred:
            for store in self.stores:
                prepared = store.prepare(list(questions))
                if prepared is not None:
                    with ThreadPoolExecutor(1) as pool:
                        store.remember(prepared.version, pool.submit(prepared).result())
                    assert store.prepare(list(questions)) is None, "a long answer computed but not kept"
        return ask_all(self.stores, questions)

    def answer(self, period: str, segment: str = "all") -> Any:
        job = answer_plan(parse_period(period, ZoneInfo(self.settings.timezone)), segment,
                          self.settings.storage.abc_thresholds)
        return run(job, self.ask)

    def kpis(self, period: str, segment: str = "all") -> Any:
        return self.answer(period, segment)["kpis"]

    def inputs(self, period: str, segment: str = "all") -> Any:
        return self.answer(period, segment)["inputs"]
