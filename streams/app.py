"""The Faust app: two agents, one changelogged customer table, and the web endpoints.

Stage 1 (``route``) reads the input topics as raw bytes, validates each message against the contract
and sends rejections to the dead-letter topic; valid messages are re-keyed by customer into an
internal topic. Stage 2 (``apply``) owns per-customer state, partitioned by customer: it dedupes,
applies the lateness rule and stores the new state (:class:`streams.processor.Processor`). The
table's changelog feeds every worker's KPI store (:class:`streams.follower.ChangelogFollower`).

Faust decodes nothing itself (raw serializers): a decode error inside Faust acks the message and
crashes the agent (see ../shared/notes/faust-pitfalls.md), so every byte is checked by our code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from aiohttp.web import Response as AioResponse
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP, EventT
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from alerts.delivery import AlertmanagerClient, DeliveryMetrics
from alerts.engine import AlertEngine, Timing
from alerts.rules import load_rules
from alerts.state import StateMetrics, StateStore
from metrics.exposition import KpiCollector, PipelineMetrics, now_us, owner
from metrics.periods import Period, parse_period
from metrics.store import KpiStore
from streams.config import Settings, parse_duration
from streams.contract import partition_key
from streams.decode import Event, Rejection, decode
from streams.errors import PeriodError
from streams.follower import ChangelogFollower
from streams.processor import Processor
from streams.topics import rekeyed_topic

ABC_SEGMENTS = ("abc:A", "abc:B", "abc:C")

log = logging.getLogger(__name__)


class CustomerTable(faust.Table):  # type: ignore[type-arg]
    """The customer table; it records which partitions this worker currently owns."""

    source_topic: str
    owned: frozenset[int] = frozenset()

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        self.owned = frozenset(tp.partition for tp in assigned if tp.topic == self.source_topic)
        log.info("customer partitions now owned: %s", sorted(self.owned))


@dataclass
class Runtime:
    """Everything a worker holds besides the Faust app itself."""

    app: faust.App
    settings: Settings
    processor: Processor
    store: KpiStore
    follower: ChangelogFollower
    table: CustomerTable
    registry: CollectorRegistry
    pipeline: PipelineMetrics
    alerts: AlertEngine | None = None

    def owned_segments(self) -> list[str]:
        """Segments whose gauges (and alerts) this worker owns (see :func:`metrics.exposition.owner`).

        None until the KPI store has read the changelog up to where it stood at start-up: a worker
        that is still catching up would export too low numbers and could fire or resolve alerts.
        """
        if not self.follower.caught_up:
            return []
        owned = self.table.owned
        parts = self.settings.partitions
        return [g for g in self.processor.ctx.segmenter.all_keys() if owner(g, parts) in owned]

    def now_us(self) -> int | None:
        """The instant rolling windows end at: wall clock, or just after the newest event (``clock=event``)."""
        if self.settings.clock == "event":
            newest = self.store.newest_us
            return None if newest is None else newest + 1
        return now_us()


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
    registry = registry or CollectorRegistry()
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap.split(",")],
        store=settings.store,
        datadir=str(settings.worker_dir),
        topic_partitions=settings.partitions,
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=max(settings.max_message_bytes * 2, 1_048_576),
        stream_wait_empty=False,
        # A crashed worker's partitions (and the series and alerts it owned) move after this long.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    pipeline = PipelineMetrics.create(registry)
    processor = Processor(settings)
    store = KpiStore(processor.ctx, (settings.abc_thresholds[0], settings.abc_thresholds[1]))
    currencies = frozenset([settings.currency, *settings.currency_rates])

    inputs = app.topic(*settings.input_topics, value_type=bytes, allow_empty=True)
    by_customer = app.topic(
        rekeyed_topic(settings), value_type=bytes, partitions=settings.partitions,
        internal=True,
    )
    dlq = app.topic(settings.topic_dlq, value_type=bytes, allow_empty=True)
    table = CustomerTable(
        app, name="customers", beacon=app.tables.beacon, partitions=settings.partitions,
        key_type=bytes, value_type=bytes,
    )
    table.source_topic = by_customer.get_topic_name()
    app.tables.add(table)
    follower = ChangelogFollower(
        settings.kafka_bootstrap, table.changelog_topic.get_topic_name(), settings.partitions, store
    )
    runtime = Runtime(app, settings, processor, store, follower, table, registry, pipeline)

    async def reject(event: EventT[bytes], rejection: Rejection) -> None:
        msg = event.message
        pipeline.rejected.labels(rejection.reason).inc()
        headers = [
            ("reason", rejection.reason.encode()),
            ("message", rejection.message[:1000].encode()),
            ("source_topic", msg.topic.encode()),
            ("source_partition", str(msg.partition).encode()),
            ("source_offset", str(msg.offset).encode()),
        ]
        await dlq.send(key=msg.key, value=msg.value, headers=headers)

    @app.agent(inputs, name="route")
    async def route(stream: Any) -> None:
        async for event in stream.events():
            try:
                result = decode(event.message.value, currencies, settings.max_message_bytes)
            except Exception as exc:  # decode() maps every known problem; a bug must still lose nothing
                log.exception("could not decode a message")
                result = Rejection("unprocessable", f"{type(exc).__name__}: {str(exc)[:500]}")
            if isinstance(result, Rejection):
                await reject(event, result)
                continue
            await by_customer.send(key=partition_key(result.data).encode(), value=event.message.value)

    @app.agent(by_customer, name="apply")
    async def apply(stream: Any) -> None:
        async for event in stream.events():
            result = decode(event.message.value, currencies, settings.max_message_bytes)
            if isinstance(result, Rejection):  # cannot happen unless someone writes to our topic
                await reject(event, result)
                continue
            try:
                await _apply_one(runtime, event, result, reject)
            except Exception as exc:  # never lose a message to a bug: dead-letter it with the error
                log.exception("could not apply event %r", result.id)
                await reject(event, Rejection("unprocessable", f"{type(exc).__name__}: {str(exc)[:500]}"))

    @app.task  # type: ignore[untyped-decorator]
    async def follow_changelog() -> None:
        await follower.run()

    alerting = _alerting(runtime)

    @app.task  # type: ignore[untyped-decorator]
    async def alert_loop() -> None:
        await alerting.run()

    _register_pages(app, runtime)

    setup_prometheus_sensors(app, pattern="/faust-metrics", registry=registry, name_prefix="retention_faust")
    registry.register(KpiCollector(store, runtime.owned_segments, runtime.now_us, settings.tz, settings.currency))
    return runtime


def _register_pages(app: faust.App, runtime: Runtime) -> None:
    """The worker's HTTP endpoints: /kpis, /alerts, /ready, /metrics."""
    @app.page("/kpis")
    async def kpis(web: Any, request: Any) -> Any:
        return _kpi_response(web, request, runtime)

    @app.page("/alerts")
    async def alerts_view(web: Any, request: Any) -> Any:
        return _alerts_response(web, request, runtime)

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        ok = bool(runtime.table.owned) and runtime.follower.caught_up
        body = {"ready": ok, "partitions": sorted(runtime.table.owned), "caught_up": runtime.follower.caught_up}
        return web.json(body, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return AioResponse(body=generate_latest(runtime.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class Alerting:
    """The alert engine, its Alertmanager client and Redis state, run as one worker task."""

    def __init__(self, engine: AlertEngine, client: AlertmanagerClient, state: StateStore) -> None:
        self.engine = engine
        self.client = client
        self.state = state
        self.stop = asyncio.Event()

    async def run(self) -> None:
        try:
            await asyncio.gather(self.engine.run(self.stop), self.client.run(self.stop))
        finally:
            await self.client.close()


def _alerting(runtime: Runtime) -> Alerting:
    settings = runtime.settings
    rules = load_rules(Path(settings.alert_rules)) if settings.alert_rules else load_rules()
    client = AlertmanagerClient(settings.alertmanager_url, metrics=DeliveryMetrics.create(runtime.registry),
                                webhook_url=settings.alert_webhook_url or None)
    state = StateStore(settings.redis_url, settings.app_id, metrics=StateMetrics.create(runtime.registry))
    timing = Timing(parse_duration(settings.alert_interval), parse_duration(settings.alert_resend))
    segments = [*runtime.processor.ctx.segmenter.all_keys()]
    engine = AlertEngine(rules, runtime.store, owned=runtime.owned_segments, segments=segments,
                         now_us=runtime.now_us, state=state, client=client, timing=timing)
    runtime.alerts = engine
    return Alerting(engine, client, state)


async def _apply_one(runtime: Runtime, event: EventT[bytes], valid: Event, reject: Any) -> None:
    pipeline = runtime.pipeline
    key = _key(event)
    outcome = runtime.processor.apply(runtime.table.get(key), valid)
    if outcome.status in ("too_late", "unprocessable"):
        await reject(event, Rejection(outcome.status, f"event {valid.id!r}: {outcome.detail}"))
        return
    pipeline.events.labels(valid.type).inc()
    pipeline.lag.observe(max(time.time() - valid.time_us / 1e6, 0.0))
    if outcome.status == "duplicate":
        pipeline.duplicates.inc()
        return
    if outcome.status == "ignored":
        pipeline.ignored.labels(outcome.detail).inc()
    if outcome.state is not None:
        runtime.table[key] = outcome.state
        pipeline.last_update.set_to_current_time()


def _alerts_response(web: Any, request: Any, runtime: Runtime) -> Any:
    """``GET /alerts?period=P``: every rule on every segment with windows ending at the end of P."""
    period = _period(request, runtime)
    if isinstance(period, str):
        return web.json({"error": period}, status=400)
    assert runtime.alerts is not None
    rows = [
        {"rule": o.rule.name, "kind": o.rule.kind, "kpi": o.rule.kpi, "window": o.rule.window,
         "segment": o.segment, "severity": o.rule.severity, "would_fire": bool(o.breached),
         "value": o.value, "baseline": o.baseline, "z_score": o.z_score, "samples": o.samples,
         "min_samples": o.rule.min_samples, "undefined": o.breached is None}
        for o in runtime.alerts.dry_run(period.end_us)
    ]
    return web.json({"period": {"label": period.label, "end": period.end.isoformat()}, "rules": rows})


def _key(event: EventT[bytes]) -> bytes:
    key = event.message.key
    if not isinstance(key, bytes):  # we produce every key of these topics ourselves, as bytes
        raise TypeError(f"unexpected key {key!r} on {event.message.topic}")
    return key


def _period(request: Any, runtime: Runtime) -> Period | str:
    """The ``?period=`` of a request, or the error message for a missing or bad one."""
    text = request.query.get("period")
    if not text:
        return "missing ?period=; use e.g. 2025-Q1"
    try:
        return parse_period(text, runtime.settings.tz)
    except PeriodError as exc:
        return str(exc)


def _kpi_response(web: Any, request: Any, runtime: Runtime) -> Any:
    segment = request.query.get("segment", "all")
    period = _period(request, runtime)
    if isinstance(period, str):
        return web.json({"error": period}, status=400)
    segmenter = runtime.processor.ctx.segmenter
    if not (segmenter.is_valid(segment) or segment in ABC_SEGMENTS):
        allowed = ", ".join([*segmenter.all_keys(), *ABC_SEGMENTS])
        return web.json({"error": f"segment {segment!r} is not one of {allowed}"}, status=400)
    answer = runtime.store.answer(period, segment)
    answer["timezone"] = runtime.settings.timezone
    answer["worker"] = {
        "partitions": sorted(runtime.table.owned),
        "caught_up": runtime.follower.caught_up,
        "changelog_records": runtime.follower.records,
    }
    return web.json(answer)
