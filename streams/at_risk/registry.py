"""The ``customer.at_risk`` events: their format, the registry every worker follows them into, ``/at-risk``
and the ``retention_customers_at_risk{class}`` gauge.

Design notes: docs/architecture.md, "streams/at_risk/registry.py".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.periods import from_us
from core.slices import RiskSettings
from metrics import ranking
from metrics.abc_classes import CLASSES, AbcSummary, Cut
from metrics.exceptions import Unavailable
from metrics.risk import US, RiskPolicy
from metrics.store import KpiStore, who_of
from streams.pacing import beside

ABC_COST_FACTOR = 50  # recompute the ABC classes at most once per 50 times what it costs (<= 2 % of the loop)
MIN_REFRESH_S = 1.0
TYPE = "customer.at_risk"
NO_CLASS = "none"
CLASS_LABELS = (*CLASSES, NO_CLASS)
MAX_LIMIT = 10_000
_LATEST = datetime.max.replace(tzinfo=UTC)
log = logging.getLogger(__name__)


class AtRiskReason(msgspec.Struct, frozen=True):
    code: str
    weight: int
    detail: str
    since: str


class AtRiskData(msgspec.Struct, frozen=True):
    """``data`` of a ``customer.at_risk`` event; equal data means nothing worth publishing changed."""

    customer_id: str
    at_risk: bool
    active: bool
    score: int
    threshold: int
    abc_class: str | None
    since: str | None
    reasons: tuple[AtRiskReason, ...]


class AtRiskEvent(msgspec.Struct, frozen=True):
    specversion: str
    id: str
    source: str
    type: str
    time: str
    data: AtRiskData
    datacontenttype: str = "application/json"


_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(AtRiskEvent).decode


def rfc3339(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")


def source_of(app_id: str) -> str:
    return f"retention-monitor/{app_id}"


def encode_event(data: AtRiskData, time_us: int, source: str) -> bytes:
    """The event's bytes; its id is a hash of what it says, so a repeated decision repeats the id."""
    body = _ENCODE(data)
    digest = hashlib.blake2b(body + rfc3339(time_us).encode() + source.encode(), digest_size=12).hexdigest()
    return _ENCODE(AtRiskEvent("1.0", f"at-risk-{digest}", source, TYPE, rfc3339(time_us), data))


def decode_event(value: bytes) -> AtRiskEvent:
    return _DECODE(value)


class AtRiskRegistry:
    """The customers at risk now, by customer id, from the events of one ``source`` (one app id)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.customers: dict[str, AtRiskData] = {}
        self.skipped = 0

    def apply(self, value: bytes | None) -> None:
        if value is None:  # a tombstone: nothing to learn from it (the monitor writes none)
            return
        try:
            event = decode_event(value)
        except msgspec.DecodeError:  # someone else's bytes in the topic: skipped, never a crash loop
            self.skipped += 1
            return
        if event.source != self.source or event.type != TYPE:  # another app id sharing the topic
            return
        if event.data.at_risk:
            self.customers[event.data.customer_id] = event.data
        else:
            self.customers.pop(event.data.customer_id, None)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CLASS_LABELS, 0)
        for data in self.customers.values():
            counts[data.abc_class or NO_CLASS] += 1
        return counts

    def query(self, cls: str | None, min_score: int, limit: int) -> tuple[int, list[AtRiskData]]:
        """``(matching, the first limit of them)``, highest score first, then longest at risk, then id."""
        rows = [d for d in self.customers.values()
                if d.score >= min_score and (cls is None or (d.abc_class or NO_CLASS) == cls)]
        rows.sort(key=lambda d: (-d.score, datetime.fromisoformat(d.since) if d.since else _LATEST, d.customer_id))
        return len(rows), rows[:limit]


class AtRiskFollower:
    """Reads every partition of the at-risk topic from the beginning, forever, into the registry."""

    def __init__(self, reader: Callable[[], AIOKafkaConsumer], topic: str, partitions: int,
                 registry: AtRiskRegistry) -> None:
        self.reader = reader
        self.topic = topic
        self.partitions = partitions
        self.registry = registry
        self.caught_up = False
        self.positions: dict[int, int] = {}
        self._start_ends: dict[int, int] | None = None
        self._moved = asyncio.Condition()

    async def run(self) -> None:
        """Follow until cancelled; a new call after a failure resumes where the last one stopped."""
        consumer = self.reader()
        await consumer.start()
        try:
            while True:  # created at start-up, maybe just now
                if self.topic in await consumer.topics():
                    break
                await asyncio.sleep(0.2)
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            if self._start_ends is None:
                self._start_ends = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
            for tp in tps:
                if tp.partition in self.positions:
                    consumer.seek(tp, self.positions[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
                for records in batch.values():
                    for record in records:
                        self.registry.apply(record.value)
                for tp in tps:
                    self.positions[tp.partition] = await consumer.position(tp)
                async with self._moved:
                    self._moved.notify_all()
                if not self.caught_up:
                    self.caught_up = all(self.positions[p] >= end for p, end in self._start_ends.items())
        finally:
            await consumer.stop()

    async def sync(self, partition: int) -> None:
        """Return once the registry has read ``partition`` up to where it ends now."""
        consumer = self.reader()
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, partition)
            end = (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
        async with self._moved:
            await self._moved.wait_for(lambda: self.positions.get(partition, -1) >= end)


class AtRiskCollector(Collector):
    """``retention_customers_at_risk{class}`` and the share of each class at risk
    (``retention_customers_at_risk_ratio{class}``): counts only, never customer ids; one worker exports."""

    def __init__(self, registry: AtRiskRegistry, exported: Callable[[], bool],
                 class_sizes: Callable[[], Mapping[str, int]] = dict) -> None:
        self.registry = registry
        self.exported = exported
        self.class_sizes = class_sizes

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fam = GaugeMetricFamily("retention_customers_at_risk", "Customers at risk now, by ABC class (none: "
                                "not ranked yet)", labels=["class"])
        share = GaugeMetricFamily("retention_customers_at_risk_ratio", "Share of each ABC class at risk now",
                                  labels=["class"])
        if self.exported():
            sizes = self.class_sizes()
            for cls, n in self.registry.counts().items():
                fam.add_metric([cls], n)
                if sizes.get(cls):
                    share.add_metric([cls], n / sizes[cls])
        yield fam
        yield share


def policy_of(risk: RiskSettings) -> RiskPolicy:
    return RiskPolicy(threshold=risk.threshold, weights=dict(risk.weights), lookback_us=risk.lookback_s * US,
                      complaint_sla_us=risk.complaint_sla_s * US, first_reply_sla_us=risk.first_reply_sla_s * US,
                      quiet_after_us=risk.quiet_after_s * US, frequency_factor=risk.frequency_factor,
                      refunds_min=risk.refunds_min)


@dataclass(frozen=True)
class RiskMetrics:
    scored: Counter
    published: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RiskMetrics:
        return cls(Counter("retention_at_risk_scored", "Customers scored for risk, by cause (event, timer, "
                           "sweep, class)", ["cause"], registry=registry),
                   Counter("retention_at_risk_published", "customer.at_risk events published, by status "
                           "(at_risk, recovered)", ["status"], registry=registry))


class Classes:
    """The ABC class of this worker's customers: the cut points come from the whole cluster (``abc``), the
    classes of the own customers from the local KPI store; recomputed at a cost-bounded rate."""

    def __init__(self, store: KpiStore, abc: Callable[[int], Awaitable[tuple[list[Cut], AbcSummary]]]) -> None:
        self.store = store
        self.abc = abc
        self.next_at = 0.0
        self.whos = np.zeros(0, np.int64)
        self.codes = np.zeros(0, np.int8)
        self.counts: dict[str, int] = {}

    async def refresh(self, now_us: int) -> bool:
        """Recompute if due; whether it did."""
        if time.monotonic() < self.next_at:
            return False
        began = time.monotonic()
        try:
            cuts, summary = await self.abc(now_us)
        except Unavailable:  # a rebalance: keep the classes known, try again later
            self.next_at = time.monotonic() + MIN_REFRESH_S
            return False
        # The ranking is in the store's memo, unless the follower wrote since: then from copies, off the loop.
        prepared = self.store.prepare([("clv_span", now_us)])
        fresh = dict(await beside(prepared)) if prepared is not None else {}
        who, clv = fresh[("known", now_us)] if fresh else self.store.known(now_us)
        self.whos, self.codes = ranking.classes(who, clv, cuts)
        self.counts = summary.customers
        self.next_at = time.monotonic() + max(MIN_REFRESH_S, ABC_COST_FACTOR * (time.monotonic() - began))
        return True

    def of(self, key: bytes) -> str | None:
        who = who_of(key)
        i = int(np.searchsorted(self.whos, who))  # whos come sorted (np.unique in KpiStore)
        return CLASSES[int(self.codes[i])] if i < len(self.whos) and self.whos[i] == who else None


def at_risk_response(web: Any, request: Any, registry: AtRiskRegistry, follower: AtRiskFollower,
                     swept: Iterable[int] = ()) -> Any:
    """``GET /at-risk?class=A&limit=50&min_score=40``: the customers at risk now, highest score first;
    ``worker.partitions_scored``: the partitions whose customers this worker has scored end to end."""
    query = request.query
    cls = query.get("class") or None
    if cls is not None and cls not in CLASS_LABELS:
        return web.json({"error": f"class {cls!r} is not one of {', '.join(CLASS_LABELS)}"}, status=400)
    numbers: dict[str, int] = {}
    for name, default, low, high in (("limit", 50, 1, MAX_LIMIT), ("min_score", 0, 0, 100)):
        text = query.get(name, str(default))
        if not text.isdigit() or not low <= int(text) <= high:
            return web.json({"error": f"{name}={text!r} is not a whole number {low}-{high}"}, status=400)
        numbers[name] = int(text)
    if not follower.caught_up:
        return web.json({"error": "this worker has not read the at-risk topic up to its start yet; retry"},
                        status=503)
    total, rows = registry.query(cls, numbers["min_score"], numbers["limit"])
    return web.json({"class": cls, "min_score": numbers["min_score"], "limit": numbers["limit"], "total": total,
                     "counts": registry.counts(), "customers": [msgspec.to_builtins(d) for d in rows],
                     "worker": {"partitions_scored": sorted(swept)}})
