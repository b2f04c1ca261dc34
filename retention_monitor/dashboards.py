"""Grafana dashboards as code: the four retention-monitor dashboards, and the
``retention-monitor dashboards generate | push`` handlers (the builder is :mod:`retention_monitor.grafana`).

The JSON in ``deploy/grafana/dashboards/`` is generated from :func:`build_all` (``generate --check``
fails when it is stale) and provisioned by ``deploy/grafana/provisioning/``; every panel and target
uses the provisioned Prometheus datasource (uid :data:`DATASOURCE_UID`). KPI gauges have one owning
worker per series, so every KPI query reads them as ``max without (instance) (...)``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError
from rich.console import Console

from core.config import LoadedSettings
from retention_monitor.exceptions import GrafanaError
from retention_monitor.grafana import (
    DEFAULT_DIR,
    JSON,
    SEGMENT_VAR,
    WINDOW_VAR,
    WS,
    Dashboard,
    Panel,
    Row,
    kpi,
    rate,
    targets,
)


def _overview_customers() -> Row:
    return Row("Customers ($segment, $window)", (
        Panel("Active customers", targets((kpi("retention_customers_active", 'segment="$segment"'), "active")),
              kind="stat", width=6, height=6, decimals=0),
        Panel("Retention rate", targets((kpi("retention_customer_retention_ratio", WS), "retention")),
              unit="percentunit", kind="stat", width=6, height=6),
        Panel("Churn rate", targets((kpi("retention_customer_churn_ratio", WS), "churn")),
              unit="percentunit", kind="stat", width=6, height=6),
        Panel("Win-back rate", targets((kpi("retention_customer_winback_ratio", WS), "win-back")),
              unit="percentunit", kind="stat", width=6, height=6),
        Panel("Retention, churn and win-back over time", targets(
            (kpi("retention_customer_retention_ratio", WS), "retention"),
            (kpi("retention_customer_churn_ratio", WS), "churn"),
            (kpi("retention_customer_winback_ratio", WS), "win-back"),
        ), unit="percentunit", width=12, min=0, max=1),
        Panel("New, lost and reactivated customers", targets(
            (kpi("retention_customers_new", WS), "new"),
            (kpi("retention_customers_lost", WS), "lost"),
            (kpi("retention_customers_reactivated", WS), "reactivated"),
        ), width=12, decimals=0),
        Panel("Churn reasons (all customers)", targets(
            (kpi("retention_customers_lost_by_reason", 'window="$window"'), "{{reason}}"),
        ), width=24, decimals=0),
    ))


def _overview_satisfaction() -> Row:
    return Row("Satisfaction ($segment, $window)", (
        Panel("NPS", targets((kpi("retention_nps_score", WS), "NPS")), width=8, min=-100, max=100),
        Panel("NPS responses", targets((kpi("retention_nps_responses", WS), "{{category}}")), width=8,
              decimals=0),
        Panel("CSAT", targets((kpi("retention_csat_ratio", WS), "CSAT")), unit="percentunit", width=8, min=0,
              max=1),
    ))


def _overview_money() -> Row:
    return Row("Revenue and customer lifetime value ($segment)", (
        Panel("Net revenue ($window)", targets((kpi("retention_net_revenue", WS), "net revenue ({{currency}})")),
              width=8),
        Panel("Customer lifetime value", targets(
            (kpi("retention_clv_historical_mean", 'segment="$segment"'), "historical ({{currency}})"),
            (kpi("retention_clv_predicted_mean", 'segment="$segment"'), "predicted ({{currency}})"),
        ), width=8),
        Panel("Repeat purchase, refund and return rates ($window)", targets(
            (kpi("retention_repeat_purchase_ratio", WS), "repeat purchase"),
            (kpi("retention_refund_ratio", WS), "refund"),
            (kpi("retention_return_ratio", WS), "return"),
        ), unit="percentunit", width=8, min=0, max=1),
    ))


def _overview_winback() -> Row:
    return Row("Win-back (all customers, now)", (
        Panel("A-class customers at risk", targets((kpi("retention_customers_at_risk", 'class="A"'), "A")),
              kind="stat", width=6, decimals=0,
              description="Top-CLV customers the at-risk scoring flags now (alert ACustomersAtRisk); who and "
                          "why: retention-monitor at-risk --class A"),
        Panel("Customers at risk by ABC class", targets(
            (kpi("retention_customers_at_risk"), "{{class}}"),
        ), width=18, decimals=0, min=0,
              description="Score >= risk_threshold from detractor answers, complaints past SLA, falling order "
                          "frequency, refunds and going quiet (docs/at-risk.md); none = not ranked yet"),
    ))


def _overview_team() -> Row:
    return Row("Sales team ($window)", (
        Panel("Sales-team retention", targets(
            (kpi("retention_sales_rep_retention_ratio", 'window="$window"'), "retention"),
            (kpi("retention_sales_team_size_ratio", 'window="$window"'), "team size, end / start"),
        ), unit="percentunit", width=24, min=0,
              description="Retention: reps on the team at the window's start still on it at its end, without a "
                          "break, over the reps at the start (0-100 %). Team size: reps at the end over reps at "
                          "the start (can pass 100 %)."),
    ))


def overview() -> Dashboard:
    rows = (_overview_customers(), _overview_winback(), _overview_satisfaction(), _overview_money(), _overview_team())
    return Dashboard("retention-overview", "Retention overview",
                     "Customer retention KPIs on event time: customers, satisfaction, revenue and CLV, the "
                     "customers at risk and the sales team.", rows, (WINDOW_VAR, SEGMENT_VAR))


def support() -> Dashboard:
    w = 'window="$window"'
    speed = Row("Response times ($window)", (
        Panel("First response time", targets(
            (kpi("retention_first_response_seconds", w), "p{{quantile}}"),
        ), unit="s", width=12, description="Ticket opened to first agent reply; exact nearest-rank quantiles."),
        Panel("Resolution time", targets(
            (kpi("retention_resolution_seconds", w), "p{{quantile}}"),
        ), unit="s", width=12, description="Ticket opened to first resolution."),
    ))
    backlog = Row("Backlog (now)", (
        Panel("Tickets awaiting first response", targets(
            (kpi("retention_tickets_awaiting_first_response"), "awaiting first response")),
              kind="stat", width=6, height=6, decimals=0),
        Panel("Tickets awaiting resolution", targets(
            (kpi("retention_tickets_awaiting_resolution"), "awaiting resolution")),
              kind="stat", width=6, height=6, decimals=0),
        Panel("Oldest ticket awaiting first response", targets(
            (kpi("retention_oldest_ticket_awaiting_first_response_age_seconds"), "age")),
              unit="s", kind="stat", width=6, height=6),
        Panel("Backlog over time", targets(
            (kpi("retention_tickets_awaiting_first_response"), "awaiting first response"),
            (kpi("retention_tickets_awaiting_resolution"), "awaiting resolution"),
        ), width=6, height=6, decimals=0),
    ))
    complaints = Row("Complaints and feedback ($window)", (
        Panel("Complaints by category", targets((kpi("retention_complaints", w), "{{category}}")), width=8,
              decimals=0),
        Panel("Complaints per 1,000 active customers", targets(
            (kpi("retention_complaints_per_1000_active_customers", w), "per 1,000 active")), width=8),
        Panel("Feedback engagement", targets((kpi("retention_feedback_response_ratio", w), "responded")),
              unit="percentunit", width=8, min=0, max=1,
              description="Share of feedback items received in the window that got a response."),
    ))
    return Dashboard("retention-support", "Retention support",
                     "Support KPIs (all customers): response and resolution times, backlog, complaints, feedback.",
                     (speed, backlog, complaints), (WINDOW_VAR,))


def segments() -> Dashboard:
    def by_dimension(dimension: str) -> Row:
        sel = f'window="$window", segment=~"{dimension}:.*"'
        return Row(f"By {dimension} ($window)", (
            Panel(f"Retention rate by {dimension}", targets(
                (kpi("retention_customer_retention_ratio", sel), "{{segment}}")), unit="percentunit", width=6),
            Panel(f"Churn rate by {dimension}", targets(
                (kpi("retention_customer_churn_ratio", sel), "{{segment}}")), unit="percentunit", width=6),
            Panel(f"NPS by {dimension}", targets((kpi("retention_nps_score", sel), "{{segment}}")), width=6),
            Panel(f"Net revenue by {dimension}", targets(
                (kpi("retention_net_revenue", sel), "{{segment}} ({{currency}})")), width=6),
        ))

    selected = Row("Selected segment: $segment ($window)", (
        Panel("Retention and churn", targets(
            (kpi("retention_customer_retention_ratio", WS), "retention"),
            (kpi("retention_customer_churn_ratio", WS), "churn"),
        ), unit="percentunit", width=6),
        Panel("NPS", targets((kpi("retention_nps_score", WS), "NPS")), width=6),
        Panel("Net revenue", targets((kpi("retention_net_revenue", WS), "{{currency}}")), width=6),
        Panel("Active customers", targets((kpi("retention_customers_active", 'segment="$segment"'), "active")),
              width=6, decimals=0),
    ))
    abc = Row("ABC classes (by historical CLV, now)", (
        Panel("Customers per ABC class", targets((kpi("retention_abc_customers"), "{{class}}")), width=12,
              decimals=0),
        Panel("CLV share per ABC class", targets((kpi("retention_abc_clv_share_ratio"), "{{class}}")),
              unit="percentunit", width=12, min=0, max=1),
    ))
    return Dashboard("retention-segments", "Retention segments",
                     "Retention, churn, NPS and net revenue per plan and region, the selected segment, ABC classes.",
                     (by_dimension("plan"), by_dimension("region"), selected, abc), (WINDOW_VAR, SEGMENT_VAR))


def _pipeline_events() -> Row:
    lag_buckets = "sum by (le) (rate(retention_event_lag_seconds_bucket[$__rate_interval]))"
    return Row("Events (processing time)", (
        Panel("Events applied per second by type", targets(
            (rate("retention_events_total", "type"), "{{type}}")), unit="ops", width=12),
        Panel("Rejected (dead-lettered) per second by reason", targets(
            (rate("retention_events_rejected_total", "reason"), "{{reason}}")), unit="ops", width=12),
        Panel("Ignored per second by reason", targets(
            (rate("retention_events_ignored_total", "reason"), "{{reason}}")), unit="ops", width=8),
        Panel("Duplicates per second", targets((rate("retention_events_duplicate_total"), "duplicates")),
              unit="ops", width=8),
        Panel("Event lag (arrival - event time)", targets(
            (f"histogram_quantile(0.5, {lag_buckets})", "p50"),
            (f"histogram_quantile(0.9, {lag_buckets})", "p90"),
            (f"histogram_quantile(0.99, {lag_buckets})", "p99"),
        ), unit="s", width=8),
    ))


def _pipeline_workers() -> Row:
    end = "max by (topic, partition) (retention_faust_topic_partition_end_offset)"
    committed = "max by (topic, partition) (retention_faust_topic_partition_offset_commited)"
    return Row("Workers", (
        Panel("Workers up", targets(('up{job="retention-monitor"}', "{{instance}}")), width=6, min=0, max=1,
              decimals=0),
        Panel("KPI last update age", targets(
            ("time() - max(retention_kpi_last_update_timestamp_seconds)", "age")), unit="s", width=6,
              description="Seconds since a KPI input last changed on any worker."),
        Panel("Consumer lag by topic", targets(
            (f"sum by (topic) ({end} - on (topic, partition) {committed})", "{{topic}}")), width=12,
              description="Faust's end offset minus committed offset per partition, summed per topic."),
    ))


def _pipeline_latency() -> Row:
    visible = "sum by (le) (rate(retention_event_visible_seconds_bucket[$__rate_interval]))"
    stages = "sum by (le, stage) (rate(retention_stage_seconds_bucket[$__rate_interval]))"
    stalls = "sum by (le) (rate(retention_event_loop_stall_seconds_bucket[$__rate_interval]))"
    return Row("Latency (processing time)", (
        Panel("Publish to KPI visible", targets(
            (f"histogram_quantile(0.5, {visible})", "p50"), (f"histogram_quantile(0.99, {visible})", "p99"),
        ), unit="s", width=6, description="Kafka timestamp of an input message to its KPI facts in a worker's KPI "
              "store."),
        Panel("Where the time goes (p99 per stage)", targets((f"histogram_quantile(0.99, {stages})", "{{stage}}")),
              unit="s", width=6, description="route: input to its pack written; queue: pack waiting for the apply "
              "agent; apply: batch applied and its changelog acknowledged; follow: changelog to KPI store; "
              "route_apply: route + queue + apply."),
        Panel("Event loop stalls", targets(
            (f"histogram_quantile(0.99, {stalls})", "p99"), (f"histogram_quantile(1, {stalls})", "max (bucket)"),
        ), unit="s", width=6, description="How late a 100 ms timer on a worker's event loop fired: every stage "
              "waits behind one long piece of work. Spikes here with spikes in every stage: the loop was held."),
        Panel("Time in GC pauses", targets(
            (rate("retention_gc_pause_seconds_sum", "generation"), "generation {{generation}}"),
        ), unit="percentunit", width=6, description="Share of wall time the garbage collector's passes over "
              "generations 1 and 2 held a worker's loop."),
    ))


def _pipeline_alerting() -> Row:
    return Row("Alert delivery", (
        Panel("Alerts sent to Alertmanager per second", targets(
            (rate("retention_alerts_sent_total", "alertname, status"), "{{alertname}} {{status}}")),
              unit="ops", width=8),
        Panel("Alert outbox", targets(("retention_alert_outbox", "{{instance}}")), width=8, decimals=0,
              description="Alerts waiting for delivery, per worker (Alertmanager unreachable when it grows)."),
        Panel("Alert state in Redis", targets(("retention_alert_state_redis_up", "{{instance}}")), width=8,
              min=0, max=1, decimals=0, description="1: alert state in Redis; 0: running from memory."),
    ))


def pipeline() -> Dashboard:
    return Dashboard("retention-pipeline", "Retention pipeline health",
                     "The monitor itself: event throughput, rejects, lag, latency and where it goes, workers, "
                     "consumer lag, alert delivery.",
                     (_pipeline_events(), _pipeline_latency(), _pipeline_workers(), _pipeline_alerting()))


def build_all() -> dict[str, JSON]:
    """Every dashboard's JSON, by file name (``<uid>.json``)."""
    return {f"{d.uid}.json": d.to_json() for d in (overview(), support(), segments(), pipeline())}


def render(dashboard: JSON) -> str:
    """Deterministic JSON text of a dashboard."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every dashboard into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in build_all().items():
        path = directory / name
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = DEFAULT_DIR) -> list[str]:
    """The dashboard files in ``directory`` that are missing or differ from :func:`build_all`."""
    out = []
    for name, dashboard in build_all().items():
        try:
            current = (directory / name).read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != render(dashboard):
            out.append(name)
    return out


def push(url: str, token: str | None, dashboards: dict[str, JSON] | None = None, timeout: float = 10.0) -> list[str]:
    """Create or update every dashboard in the Grafana at ``url`` (overwrite); returns the uids pushed.

    Raises :class:`GrafanaError` (one line, naming ``url``) when Grafana is unreachable, refuses the
    token (401/403) or rejects a dashboard.
    """
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    pushed = []
    for dashboard in (dashboards or build_all()).values():
        uid = dashboard["uid"]
        try:
            api.dashboard.update_dashboard({"dashboard": dashboard, "overwrite": True,
                                            "message": "retention-monitor dashboards push"})
        except GrafanaUnauthorizedError as exc:
            raise GrafanaError(f"Grafana at {url} refused the credentials (HTTP 401); check --token") from exc
        except GrafanaClientError as exc:
            if exc.status_code == 403:
                raise GrafanaError(f"Grafana at {url} does not allow this token to write dashboards "
                                   "(HTTP 403); use a token with the Editor or Admin role") from exc
            raise GrafanaError(f"Grafana at {url} rejected dashboard {uid}: {_one_line(exc)}") from exc
        except GrafanaException as exc:
            raise GrafanaError(f"Grafana at {url} failed on dashboard {uid}: {_one_line(exc)}") from exc
        except OSError as exc:  # niquests' ConnectionError and friends are OSErrors
            raise GrafanaError(f"Grafana at {url} is unreachable ({type(exc).__name__})") from exc
        pushed.append(uid)
    return pushed


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


# -- CLI handlers ---------------------------------------------------------------------------------


def dashboards_generate(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    """Write the dashboard JSON, or with ``--check`` exit 1 if the checked-in files are stale."""
    directory = Path(getattr(args, "dir", None) or DEFAULT_DIR)
    if getattr(args, "check", False):
        bad = stale(directory)
        if bad:
            console.print(f"{directory}: stale {', '.join(bad)}; run `retention-monitor dashboards generate`",
                          highlight=False)
            return 1
        console.print(f"{directory}: dashboards up to date", highlight=False)
        return 0
    for path in write_all(directory):
        console.print(f"wrote {path}", highlight=False)
    return 0


def dashboards_push(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    """Create or update every dashboard in a running Grafana (``--url``, ``--token`` or $GRAFANA_TOKEN)."""
    url: str = getattr(args, "url", None) or "http://127.0.0.1:3000"
    token: str | None = getattr(args, "token", None) or os.environ.get("GRAFANA_TOKEN") or None
    for uid in push(url, token):
        console.print(f"pushed {uid} to {url}/d/{uid}", highlight=False)
    return 0
