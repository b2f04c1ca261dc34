"""The worker's HTTP endpoints: ``/kpis``, ``/cohorts``, ``/alerts``, ``/at-risk``, ``/ready``, ``/metrics``.

Each answers from what the worker already holds (the KPI store, the alert engine, the at-risk
registry); a bad query parameter gets a 400 with one line naming it and what is allowed.
"""

from __future__ import annotations

from typing import Any, Protocol

import faust
import msgspec
from aiohttp.web import Response as AioResponse
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from alerts.engine import AlertEngine
from core.errors import PeriodError
from core.periods import Period, parse_period
from core.slices import CalendarSettings
from metrics.exceptions import Unavailable
from metrics.segments import Segmenter
from metrics.store import KpiStore, answer_plan
from streams.apply.stage import ApplyStage
from streams.at_risk.registry import at_risk_response
from streams.at_risk.tracker import RiskTracker
from streams.cluster.coordinator import Cluster
from streams.cluster.http import questions_of
from streams.follow.follower import ChangelogFollower
from streams.telemetry import exposition
from streams.web.cohorts import cohorts_response

ABC_SEGMENTS = ("abc:A", "abc:B", "abc:C")


class Runtime(Protocol):
    """What the pages read of a running worker (:class:`streams.worker.runtime.Runtime`)."""

    owned: frozenset[int]
    segmenter: Segmenter
    store: KpiStore
    follower: ChangelogFollower
    apply: ApplyStage
    registry: CollectorRegistry
    alerts: AlertEngine | None
    risk: RiskTracker | None
    cluster: Cluster

    def ready(self) -> bool: ...


def register_pages(app: faust.App, runtime: Runtime, calendar: CalendarSettings,
                   thresholds: tuple[float, float]) -> None:
    @app.page("/kpis")
    async def kpis(web: Any, request: Any) -> Any:
        return await kpi_response(web, request, runtime, calendar, thresholds)

    @app.page("/cohorts")
    async def cohorts(web: Any, request: Any) -> Any:
        return await cohorts_response(web, request, runtime.cluster, runtime.segmenter, calendar)

    @app.page("/alerts")
    async def alerts_view(web: Any, request: Any) -> Any:
        return await alerts_response(web, request, runtime, calendar)

    @app.page("/partials")
    class Partials(View):  # a POST: a page function would only answer GET
        async def post(self, request: Any) -> Any:
            return await partials_response(self, request, runtime)

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
        return AioResponse(body=await exposition(runtime.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def period_of(request: Any, calendar: CalendarSettings) -> Period | str:
    """The ``?period=`` of a request, or the error message for a missing or bad one."""
    text = request.query.get("period")
    if not text:
        return "missing ?period=; use e.g. 2025-Q1"
    try:
        return parse_period(text, calendar.tz)
    except PeriodError as exc:
        return str(exc)


async def alerts_response(web: Any, request: Any, runtime: Runtime, calendar: CalendarSettings) -> Any:
    """``GET /alerts?period=P``: every rule on every segment with windows ending at the end of P."""
    period = period_of(request, calendar)
    if isinstance(period, str):
        return web.json({"error": period}, status=400)
    assert runtime.alerts is not None
    try:
        observations = await runtime.alerts.dry_run(period.end_us)
    except Unavailable as exc:
        return web.json({"error": f"the cluster cannot answer now: {exc}"}, status=503)
    rows = [
        {"rule": o.rule.name, "kind": o.rule.kind, "kpi": o.rule.kpi, "window": o.rule.window,
         "segment": o.segment, "severity": o.rule.severity, "would_fire": bool(o.breached),
         "value": o.value, "baseline": o.baseline, "z_score": o.z_score, "samples": o.samples,
         "min_samples": o.rule.min_samples, "undefined": o.breached is None,
         **({"drop": o.drop, "cohorts": list(o.cohorts), "min_customers": o.rule.min_customers}
            if o.rule.kind == "cohort" else {})}
        for o in observations
    ]
    return web.json({"period": {"label": period.label, "end": period.end.isoformat()}, "rules": rows})


async def kpi_response(web: Any, request: Any, runtime: Runtime, calendar: CalendarSettings,
                       thresholds: tuple[float, float]) -> Any:
    """``GET /kpis?period=P&segment=S``: every KPI of the period with its inputs, and this worker's state."""
    segment = request.query.get("segment", "all")
    period = period_of(request, calendar)
    if isinstance(period, str):
        return web.json({"error": period}, status=400)
    segmenter = runtime.segmenter
    if not (segmenter.is_valid(segment) or segment in ABC_SEGMENTS):
        allowed = ", ".join([*segmenter.all_keys(), *ABC_SEGMENTS])
        return web.json({"error": f"segment {segment!r} is not one of {allowed}"}, status=400)
    try:
        answer = await runtime.cluster(answer_plan(period, segment, thresholds))
    except Unavailable as exc:  # exact or nothing: a rebalance, a worker restoring or away
        return web.json({"error": f"the cluster cannot answer now: {exc}"}, status=503)
    answer["timezone"] = calendar.timezone
    follower = runtime.follower
    answer["worker"] = {
        "partitions": sorted(runtime.owned), "caught_up": follower.caught_up, "ready": runtime.ready(),
        "changelog_records": follower.records, "changelog_started_at": follower.started_at,
        "changelog_read_to_catch_up": follower.catch_up_records,
    }
    return web.json(answer)


async def partials_response(web: Any, request: Any, runtime: Runtime) -> Any:
    """``POST /partials``: this worker's own answers to KPI questions, for the partitions it owns."""
    try:
        body = msgspec.json.decode(await request.read())
        if "release" in body:  # the answer is known: the store may change again
            await runtime.cluster.local.release(str(body["release"]))
            return web.json({"released": body["release"]})
        partitions, questions, session = [int(p) for p in body["partitions"]], questions_of(body), str(body["session"])
    except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
        return web.json({"error": f"not a questions request: {exc}"}, status=400)
    try:
        answers = await runtime.cluster.local.ask(partitions, questions, session)
    except Unavailable as exc:
        return web.json({"error": str(exc)}, status=503)
    return AioResponse(body=msgspec.json.encode({"partitions": partitions, "answers": answers}),
                       content_type="application/json")
