"""At-risk customers in the stream: the owner of a customer's partition re-scores it when its state
changes and when its score could change by itself, and publishes ``customer.at_risk`` events.

Design notes: docs/architecture.md, "streams/at_risk/tracker.py".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from retention_native import Schedule

from alerts.catalog import Live
from core.slices import KafkaSettings, RiskSettings, TopicSettings
from metrics.records import decode_state
from metrics.risk import DAY_US, QUIET, Risk, score
from metrics.store import REP_PREFIX
from streams.apply.stage import ApplyStage
from streams.apply.stores import PartitionStore
from streams.at_risk.registry import (
    AtRiskData,
    AtRiskFollower,
    AtRiskReason,
    AtRiskRegistry,
    Classes,
    RiskMetrics,
    encode_event,
    policy_of,
    rfc3339,
    source_of,
)
from streams.kafka.clients import new_reader
from streams.pacing import Slice
from streams.ports import Producer
from streams.wire import partition_of

RECHECK_US = DAY_US
REVOKE_WAIT_S = 5.0
RETRY_S = 1.0
CHUNK = 500
SWEEP_CHUNK = 100  # keys scored in one turn of a sweep: 10-30 ms
TICK_S = 1.0
BACKOFF = 9.0
log = logging.getLogger(__name__)


class RiskTracker:
    """Scores the customers of the partitions this worker owns and publishes their at-risk changes."""

    def __init__(self, risk: RiskSettings, topics: TopicSettings, *, apply: ApplyStage, producer: Producer,
                 classes: Classes, follower: AtRiskFollower, registry: AtRiskRegistry, source: str,
                 now_us: Callable[[], int | None], kpi_ready: Callable[[], bool], metrics: RiskMetrics) -> None:
        self.policy = policy_of(risk)
        self.topic, self.partitions = topics.at_risk, topics.partitions
        self.apply, self.producer, self.follower, self.registry = apply, producer, follower, registry
        self.source, self.now_us, self.kpi_ready, self.metrics = source, now_us, kpi_ready, metrics
        self.classes = classes
        self.owned: frozenset[int] = frozenset()
        self.live: set[int] = set()  # partitions whose changes are tracked (their sweep has started)
        self.pending: list[int] = []  # partitions to sweep
        self.swept: set[int] = set()  # partitions scored end to end
        self.sweep: tuple[int, PartitionStore, Iterator[list[bytes]]] | None = None
        # Changed keys with their partition: the state is read when a key's turn comes, so a backlog of
        # changed keys holds no states, and a key changed many times is scored once.
        self.dirty: dict[bytes, int] = {}
        self.due = Schedule()  # when each scored key is next scored by itself (compiled: ~100 B a key)
        self.published: dict[bytes, AtRiskData] = {}  # owned customers at risk, as last published
        self.outbox: list[tuple[bytes, int, bytes, AtRiskData | None, bool]] = []
        self.paused = False
        self.counted: dict[str, int] = {}
        self.wake = asyncio.Event()
        self._inflight: asyncio.Task[None] | None = None

    # -- called by the worker ----------------------------------------------------------------------

    def changed(self, partition: int, keys: list[bytes]) -> None:
        """The apply stage wrote the states of these keys of ``partition``: score them soon."""
        if partition in self.live:
            dirty = self.dirty
            for key in keys:
                if not key.startswith(REP_PREFIX):
                    dirty[key] = partition
        self.wake.set()

    async def revoked(self) -> None:
        """Publish nothing until the new assignment is known, and let what is in flight land first:
        the next owner reads the topic up to its end when it takes a partition over."""
        self.paused = True
        if self._inflight is not None:  # bounded: a rebalance must not wait for a Kafka outage
            await asyncio.wait([self._inflight], timeout=REVOKE_WAIT_S)

    def assigned(self, owned: frozenset[int]) -> None:
        gone = self.owned - owned
        if gone:
            self._purge(gone)
        self.pending += sorted(owned - self.owned)
        self.owned, self.paused = owned, False
        self.wake.set()

    def live_counts(self) -> Live | None:
        """What alert rules read: customers at risk and per ABC class; None (undefined) until the registry
        has read the topic up to where it stood at start-up, so a new owner neither fires nor resolves."""
        if not self.follower.caught_up:
            return None
        return Live(self.registry.counts(), dict(self.classes.counts))

    # -- the task ----------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            began = time.monotonic()
            if await self.tick():
                # At most about 1 / (1 + BACKOFF) of the loop: under a backlog the changed keys pile up
                # (each scored once however often it changed) instead of slowing the apply stage down.
                await asyncio.sleep((time.monotonic() - began) * BACKOFF)
            else:
                with contextlib.suppress(TimeoutError):  # the timer: look again
                    await asyncio.wait_for(self.wake.wait(), TICK_S)
                self.wake.clear()

    async def tick(self) -> bool:
        """One round (a chunk of changed, due and swept keys, then their events); whether work is left."""
        # With clock = event, the newest event in the KPI store: every worker scores on the same clock
        # as its gauges; a customer's records from then on count once the clock passes them.
        now = self.now_us()
        if self.paused or now is None or not (self.kpi_ready() and self.follower.caught_up):
            return False
        if await self.classes.refresh(now):
            for key, data in self.published.items():  # bounded by the customers at risk
                if self.classes.of(key) != data.abc_class:
                    self.dirty.setdefault(key, self._partition(key))
        busy = self._step(now, Slice())
        if not busy and (self.sweep is not None or self.pending):
            busy = await self._sweep_step(now)
        await self._flush()
        for cause, n in self.counted.items():
            self.metrics.scored.labels(cause).inc(n)
        self.counted.clear()
        return busy

    def _partition(self, key: bytes) -> int:
        return partition_of(key, self.partitions)

    def _step(self, now: int, turn: Slice) -> bool:
        """Score changed keys, then keys whose time has come, for one slice of the event loop (the
        changed ones for half of it at most, so the timers are not starved); whether more are waiting."""
        n = 0
        changed = Slice(turn.seconds / 2)
        while self.dirty and n < CHUNK and not changed.over():
            key, partition = self.dirty.popitem()
            if partition not in self.live:  # taken back after a failed publish, and revoked since
                continue
            store = self.apply.stores.get(partition)
            self._rescore(key, partition, None if store is None else store.get(key), now, "event")
            n += 1
        while n < 2 * CHUNK and not turn.over() and (due := self.due.pop_due(now)) is not None:
            partition = self._partition(due)
            store = self.apply.stores.get(partition)
            if store is not None and partition in self.live:
                self._rescore(due, partition, store.get(due), now, "timer")
                n += 1
        return bool(self.dirty) or self.due.any_due(now)

    def _rescore(self, key: bytes, partition: int, raw: bytes | None, now: int, cause: str) -> None:
        cls = self.classes.of(key)
        risk = score(decode_state(raw).records, now, cls, self.policy)
        self._decide(key, partition, risk, cls, now)
        nxt = risk.next_check_us
        if risk.at_risk or any(r.code == QUIET for r in risk.reasons):  # class changes matter to them
            nxt = min(nxt, now + RECHECK_US) if nxt is not None else now + RECHECK_US
        self.due.set(key, nxt)
        self.counted[cause] = self.counted.get(cause, 0) + 1

    def _decide(self, key: bytes, partition: int, risk: Risk, cls: str | None, now: int) -> None:
        old = self.published.get(key)
        if old is None and not risk.at_risk:
            return
        data = AtRiskData(key.decode(errors="replace"), risk.at_risk, risk.active, risk.score, self.policy.threshold,
                          cls, None if risk.since_us is None else rfc3339(risk.since_us),
                          tuple(AtRiskReason(r.code, r.weight, r.detail, rfc3339(r.since_us)) for r in risk.reasons))
        if data == old:
            return
        if risk.at_risk:
            self.published[key] = data
        else:
            del self.published[key]
        self.outbox.append((key, partition, encode_event(data, now, self.source), old, risk.at_risk))

    async def _flush(self) -> None:
        if not self.outbox:
            return
        batch, self.outbox = self.outbox, []
        try:
            self._inflight = asyncio.ensure_future(self._send(batch))
            await self._inflight
        except Exception as exc:  # Kafka away: take the decisions back and make them again later
            log.error("could not publish %d at-risk events (%s); retrying", len(batch), type(exc).__name__)
            for key, partition, _, old, _ in reversed(batch):
                if old is None:
                    self.published.pop(key, None)
                else:
                    self.published[key] = old
                self.dirty[key] = partition
            await asyncio.sleep(RETRY_S)
            return
        finally:
            self._inflight = None
        for _, _, _, _, at_risk in batch:
            self.metrics.published.labels("at_risk" if at_risk else "recovered").inc()

    async def _send(self, batch: list[tuple[bytes, int, bytes, AtRiskData | None, bool]]) -> None:
        futures = [await self.producer.send(self.topic, value, key=key, partition=partition)
                   for key, partition, value, _, _ in batch]
        await asyncio.gather(*futures)

    async def _sweep_step(self, now: int) -> bool:
        """Start the next partition's sweep, or score its next chunk of keys; whether work remains."""
        if self.sweep is None:
            partition = self.pending[0]  # taken off only once Kafka answered: a failure retries it
            await self.follower.sync(partition)  # what earlier owners published for it
            store = await self.apply.store(partition)
            if partition not in self.pending or partition not in self.owned:  # reassigned meanwhile
                return True
            self.pending.remove(partition)
            for customer, data in self.registry.customers.items():
                key = customer.encode()
                if self._partition(key) == partition:
                    self.published[key] = data
            self.live.add(partition)
            self.sweep = (partition, store, store.key_chunks(SWEEP_CHUNK))
            log.info("partition %d: scoring every customer for risk (%d keys)", partition, len(store))
            return True
        partition, store, chunks = self.sweep
        try:
            if partition not in self.owned or self.apply.stores.get(partition) is not store:
                raise LookupError("partition no longer owned")
            chunk = next(chunks, None)
        except Exception:  # revoked, or its store closed under the sweep: the next owner sweeps it
            self.sweep = None
            return True
        if chunk is None:
            self.sweep = None
            self.swept.add(partition)
            for key in [k for k in self.published if self._partition(k) == partition and store.get(k) is None]:
                self._rescore(key, partition, None, now, "sweep")  # published once, gone from the state since
            log.info("partition %d: at-risk sweep done", partition)
            return bool(self.pending)
        for key in chunk:
            if not key.startswith(REP_PREFIX) and key not in self.dirty:
                self._rescore(key, partition, store.get(key), now, "sweep")
        return True

    def _purge(self, gone: set[int] | frozenset[int]) -> None:
        """Forget partitions now owned by another worker."""
        self.live -= gone
        self.swept -= gone
        self.pending = [p for p in self.pending if p not in gone]
        if self.sweep is not None and self.sweep[0] in gone:
            self.sweep = None
        for table in (self.dirty, self.published):
            for key in [k for k in table if self._partition(k) in gone]:
                del table[key]
        self.due.retain(lambda key: self._partition(key) not in gone)


def new_tracker(risk: RiskSettings, topics: TopicSettings, kafka: KafkaSettings, *, apply: ApplyStage,
                producer: Producer, classes: Classes, now_us: Callable[[], int | None],
                kpi_ready: Callable[[], bool], registry: CollectorRegistry) -> RiskTracker:
    """A worker's tracker with its registry and the follower of ``topic_at_risk`` feeding it."""
    source = source_of(topics.app_id)
    customers = AtRiskRegistry(source)
    follower = AtRiskFollower(lambda: new_reader(kafka), topics.at_risk, topics.partitions, customers)
    return RiskTracker(risk, topics, apply=apply, producer=producer, classes=classes, follower=follower,
                       registry=customers,
                       source=source, now_us=now_us, kpi_ready=kpi_ready, metrics=RiskMetrics.create(registry))
