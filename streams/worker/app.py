"""The worker: a Faust app whose hot path moves events in batches.

Stage 1 (route, :mod:`streams.route.stage`) reads the input topics with a batched aiokafka consumer
(group ``<app_id>-route``): every message is validated by our code and rejections go to the
dead-letter topic; valid events travel on, packed per customer partition, through the re-keyed
topic. Stage 2 is the Faust agent ``apply`` (group ``app_id``): one Faust event is one packed
batch, applied to the owned partitions' states (:mod:`streams.apply.stage`), whose changelog carries each
key's new state and fact set. Every worker follows every changelog partition into its KPI store
(:class:`streams.follower.ChangelogFollower`), which serves ``/kpis``, the gauges and the alerts.

Faust decodes nothing itself (raw serializers): a decode error inside Faust acks the message and
crashes the agent (../shared/notes/faust-pitfalls.md), so every byte is checked by our code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import mode
from aiohttp.web import Response as AioResponse
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from alerts.delivery import AlertmanagerClient, DeliveryMetrics
from alerts.engine import AlertEngine, Timing
from alerts.rules import load_rules
from alerts.state import StateMetrics, StateStore
from core.errors import PeriodError
from core.periods import Period, parse_period
from core.settings import Settings, parse_duration
from metrics import snapshot
from metrics.exposition import ConsumerMetrics, GaugeBoard, KpiCollector, PipelineMetrics, now_us, owner
from metrics.segments import ALL
from metrics.store import KpiStore
from streams.apply.backpressure import BufferFullSensor
from streams.apply.processor import Processor
from streams.apply.stage import ApplyStage, Counts
from streams.at_risk.pages import AtRiskCollector, at_risk_response
from streams.at_risk.tracker import RiskTracker, new_tracker
from streams.contract.decode import Rejection
from streams.follow.follower import ChangelogFollower, Checkpoints
from streams.kafka.clients import SharedProducer, client_options, new_reader, ssl_context
from streams.kafka.topics import CHECKPOINT_MAX_AGE_S, changelog_topic, rekeyed_topic
from streams.route.consumer import BatchConsumer
from streams.route.stage import Origin, RouteStage
from streams.wire import Routed
from streams.worker.loop_watch import LoopWatch

ABC_SEGMENTS = ("abc:A", "abc:B", "abc:C")
RETRY_SECONDS = (0.5, 1, 2, 5, 10)
TAKE_PACKS, TAKE_WITHIN_S = 64, 0.01

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a worker holds besides the Faust app itself."""

    app: faust.App
    settings: Settings
    processor: Processor
    store: KpiStore
    follower: ChangelogFollower
    registry: CollectorRegistry
    pipeline: PipelineMetrics
    apply: ApplyStage
    route: BatchConsumer
    owned: frozenset[int] = frozenset()
    alerts: AlertEngine | None = None
    risk: RiskTracker | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def ready(self) -> bool:
        """Owns partitions, their states are restored, and the KPI store has caught up."""
        return bool(self.owned) and self.follower.caught_up and self.owned <= self.apply.trusted()

    def owned_segments(self) -> list[str]:
        """Segments whose gauges (and alerts) this worker owns (see :func:`metrics.exposition.owner`).

        None until the KPI store has read the changelog up to where it stood at start-up: a worker
        that is still catching up would export too low numbers and could fire or resolve alerts.
        """
        if not self.follower.caught_up:
            return []
        owned = self.owned
        parts = self.settings.partitions
        return [g for g in self.processor.ctx.segmenter.all_keys() if owner(g, parts) in owned]

    def now_us(self) -> int | None:
        """The instant rolling windows end at: wall clock, or just after the newest event (``clock=event``)."""
        if self.settings.clock == "event":
            newest = self.store.newest_us
            return None if newest is None else newest + 1
        return now_us()

    async def apply_packed(self, packs: list[tuple[int, bytes, float]]) -> None:
        """Apply packed batches; retried until it succeeds, since Faust acks whatever returns."""
        await self.started.wait()
        for attempt in range(1_000_000):
            try:
                await self.apply.handle(packs)
                return
            except Exception as exc:
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                # The traceback may quote event data: only at debug level.
                log.error("apply: %d packed batches failed (%s); retrying in %ss", len(packs), type(exc).__name__,
                          delay)
                log.debug("apply failure", exc_info=True)
                await asyncio.sleep(delay)


def faust_credentials(settings: Settings) -> Any:
    """The same connection for Faust (``broker_credentials``), or ``None`` for plaintext."""
    context = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        return faust.SASLCredentials(username=settings.kafka_sasl_username, password=settings.kafka_sasl_password,
                                     mechanism=settings.kafka_sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
    registry = registry or CollectorRegistry()
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.worker_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
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
        # A rebalance waits for the batch in hand (and its changelog writes): the next owner of the
        # partition must read them when it restores (see streams/apply/stage.py).
        stream_wait_empty=True,
        # Packs: thousands of events each in a backlog, a few dozen at a live rate. The agent takes up
        # to this many per turn of the event loop; at 16, live traffic of 3,000 events/s outran it once
        # the loop got busier (queue p50 20 ms -> 1.3 s in bench/soak.py). Not more: a rebalance waits
        # for the buffer to drain (stream_wait_empty), ~100,000 events in a backlog at 64 (4x as large
        # a buffer did not remove the soak's occasional 1 s queue spikes either).
        stream_buffer_maxsize=TAKE_PACKS,
        # A crashed worker's partitions (and the series and alerts it owned) move after this long.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    pipeline = PipelineMetrics.create(registry)
    consumer_metrics = ConsumerMetrics(registry)
    processor = Processor(settings)
    store = KpiStore(processor.ctx, (settings.abc_thresholds[0], settings.abc_thresholds[1]))
    producer = SharedProducer(settings)
    dlq = settings.topic_dlq

    async def dead_letter(key: bytes | None, value: bytes | None, rejection: Rejection, origin: Origin) -> None:
        topic, partition, offset = origin
        headers = [
            ("reason", rejection.reason.encode()),
            ("message", rejection.message[:1000].encode()),
            ("source_topic", topic.encode()),
            ("source_partition", str(partition).encode()),
            ("source_offset", str(offset).encode()),
        ]
        await (await producer().send(dlq, value, key=key, headers=headers))

    def count_rejected(reasons: dict[str, int]) -> None:
        for reason, n in reasons.items():
            pipeline.rejected.labels(reason).inc(n)

    async def reject_routed(routed: Routed, rejection: Rejection) -> None:
        count_rejected({rejection.reason: 1})
        await dead_letter(routed.key, routed.raw, rejection, (routed.topic, routed.partition, routed.offset))

    def counted(counts: Counts) -> None:
        pipeline.count(counts.events, counts.duplicates, counts.ignored, counts.event_times_us, time.time())

    changelog = changelog_topic(settings)
    apply_stage = ApplyStage(processor=processor, producer=producer, changelog=changelog, store_url=settings.store,
                             data_dir=settings.worker_dir / "state", consumer_factory=lambda: new_reader(settings),
                             reject=reject_routed, on_counts=counted, on_restored=pipeline.restored.inc,
                             on_timing=lambda stage, seconds: pipeline.stage.labels(stage).observe(seconds))
    route_stage = RouteStage(processor=processor, producer=producer, rekeyed=rekeyed_topic(settings),
                             partitions=settings.partitions, dead_letter=dead_letter,
                             max_bytes=settings.max_message_bytes, on_rejected=count_rejected)
    route = BatchConsumer(stage="route", options=client_options(settings), group_id=f"{settings.app_id}-route",
                          topics=settings.input_topics, handle=route_stage.handle, metrics=consumer_metrics)
    follower = ChangelogFollower(lambda: new_reader(settings), changelog, settings.partitions, store,
                                 visible=pipeline.visible, on_change=pipeline.last_update.set_to_current_time,
                                 on_repair=pipeline.repaired.inc,
                                 stages=(pipeline.stage.labels("route_apply"), pipeline.stage.labels("follow")),
                                 checkpoints=Checkpoints(settings.worker_dir / "kpi-checkpoint",
                                                         snapshot.fingerprint(settings.to_dict()),
                                                         parse_duration(settings.checkpoint_interval),
                                                         CHECKPOINT_MAX_AGE_S))
    runtime = Runtime(app, settings, processor, store, follower, registry, pipeline, apply_stage, route)
    runtime.risk = risk = _at_risk(runtime, producer)

    rekeyed = app.topic(rekeyed_topic(settings), value_type=bytes, partitions=settings.partitions, internal=True)
    table_topic = rekeyed.get_topic_name()

    @app.agent(rekeyed, name="apply")
    async def apply(stream: Any) -> None:
        # A few packs at a time: their changelog writes are acknowledged together.
        async for events in stream.take_events(TAKE_PACKS, within=TAKE_WITHIN_S):
            await runtime.apply_packed([(e.message.partition, e.message.value, e.message.timestamp) for e in events])

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        apply_stage.revoked({tp.partition for tp in revoked if tp.topic == table_topic})
        await risk.revoked()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        owned = frozenset(tp.partition for tp in assigned if tp.topic == table_topic)
        apply_stage.assigned(set(owned))
        risk.assigned(owned)
        runtime.owned = owned
        log.info("customer partitions now owned: %s", sorted(owned))
        for partition in sorted(owned):  # restore now rather than at the first batch
            app.loop.create_task(_warm(runtime, partition))

    app.add_dependency(_Engine(runtime, producer))
    alerting = _alerting(runtime)

    @app.task  # type: ignore[untyped-decorator]
    async def alert_loop() -> None:
        await alerting.run()

    _register_pages(app, runtime)

    setup_prometheus_sensors(app, pattern="/faust-metrics", registry=registry, name_prefix="retention_faust")
    _background_metrics(runtime)
    return runtime


def _background_metrics(runtime: Runtime) -> None:
    """The KPI gauges, computed off the scrape path; the event loop's stall and GC pause times; Faust's
    pauses of the apply agent's partitions."""
    settings, registry = runtime.settings, runtime.registry
    board = GaugeBoard(KpiCollector(runtime.store, runtime.owned_segments, runtime.now_us, settings.tz,
                                    settings.currency))  # fmt: skip
    registry.register(board)
    loop_watch = LoopWatch.create(registry)
    runtime.app.sensors.add(BufferFullSensor(registry))

    @runtime.app.task  # type: ignore[untyped-decorator]
    async def gauges() -> None:
        await _forever("gauges", board.run)

    @runtime.app.task  # type: ignore[untyped-decorator]
    async def watch_loop() -> None:
        await loop_watch.run()


def _at_risk(runtime: Runtime, producer: SharedProducer) -> RiskTracker:
    """The at-risk tracker (streams/at_risk/tracker.py), fed by the apply stage, with its gauge and its task."""
    risk = new_tracker(runtime.settings, apply=runtime.apply, producer=producer, store=runtime.store,
                       now_us=runtime.now_us, kpi_ready=lambda: runtime.follower.caught_up, registry=runtime.registry)
    runtime.apply.on_changed = risk.changed
    # One worker exports the counts, like the other series without a segment label (with "all").
    runtime.registry.register(AtRiskCollector(risk.registry, lambda: ALL in runtime.owned_segments()
                                              and risk.follower.caught_up, lambda: risk.classes.counts))

    @runtime.app.task  # type: ignore[untyped-decorator]
    async def at_risk() -> None:
        await runtime.started.wait()  # the tracker publishes with the shared producer
        await asyncio.gather(_forever("at-risk follower", risk.follower.run), _forever("at-risk", risk.run))

    return risk


async def _warm(runtime: Runtime, partition: int) -> None:
    await runtime.started.wait()
    try:
        await runtime.apply.store(partition)
    except Exception:  # the first batch of the partition tries again
        log.warning("could not restore partition %d yet", partition, exc_info=True)


class _Engine(mode.Service):
    """Starts the shared producer, then runs the route consumer and the changelog follower."""

    def __init__(self, runtime: Runtime, producer: SharedProducer) -> None:
        super().__init__()
        self.runtime = runtime
        self.producer = producer

    async def on_start(self) -> None:
        await self.producer.start()
        self.runtime.started.set()

    async def on_stop(self) -> None:
        await self.producer.stop()
        self.runtime.apply.close()

    @mode.Service.task
    async def _route(self) -> None:
        await _forever("route", self.runtime.route.run)

    @mode.Service.task
    async def _follow(self) -> None:
        await _forever("follower", self.runtime.follower.run)


async def _forever(name: str, run: Any) -> None:
    """Run ``run()`` again after a failure (a broker outage, say), with backoff; offsets make it safe."""
    attempt = 0
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
            log.error("%s failed (%s: %s); restarting in %ss", name, type(exc).__name__, str(exc)[:200], delay)
            log.debug("%s failure", name, exc_info=True)
            attempt += 1
            await asyncio.sleep(delay)


def _register_pages(app: faust.App, runtime: Runtime) -> None:
    """The worker's HTTP endpoints: /kpis, /alerts, /at-risk, /ready, /metrics."""
    @app.page("/kpis")
    async def kpis(web: Any, request: Any) -> Any:
        return _kpi_response(web, request, runtime)

    @app.page("/alerts")
    async def alerts_view(web: Any, request: Any) -> Any:
        return _alerts_response(web, request, runtime)

    @app.page("/at-risk")
    async def at_risk(web: Any, request: Any) -> Any:
        assert runtime.risk is not None
        return at_risk_response(web, request, runtime.risk.registry, runtime.risk.follower, runtime.risk.swept)

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        ok = runtime.ready()
        body = {"ready": ok, "partitions": sorted(runtime.owned), "caught_up": runtime.follower.caught_up,
                "restored": sorted(runtime.apply.trusted())}
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
    state = StateStore.from_settings(settings, metrics=StateMetrics.create(runtime.registry))
    timing = Timing(parse_duration(settings.alert_interval), parse_duration(settings.alert_resend))
    segments = [*runtime.processor.ctx.segmenter.all_keys()]
    engine = AlertEngine(rules, runtime.store, owned=runtime.owned_segments, segments=segments,
                         now_us=runtime.now_us, state=state, client=client, timing=timing,
                         live=runtime.risk.live_counts if runtime.risk is not None else None)
    runtime.alerts = engine
    return Alerting(engine, client, state)


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
        "partitions": sorted(runtime.owned),
        "caught_up": runtime.follower.caught_up,
        "ready": runtime.ready(),
        "changelog_records": runtime.follower.records,
        "changelog_started_at": runtime.follower.started_at,
        "changelog_read_to_catch_up": runtime.follower.catch_up_records,
    }
    return web.json(answer)
