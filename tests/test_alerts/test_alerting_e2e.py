"""End to end: events through the real Kafka, two workers with state in the real Redis, a real
Alertmanager routing to a local webhook receiver. A churn spike pages once with the right labels,
survives a kill -9 of its owner without a second page, and resolves when churn recovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alert_fixtures import Receiver, alertmanager
from fixtures import ROOT, WorkerProcess, another_worker, event, isolated_env, lifecycle_messages, poll, produce
from redis import Redis

from metrics.gauges import owner

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 10, 12, tzinfo=UTC)


def rule_file(tmp: Path, name: str) -> Path:
    path = tmp / "rules.yml"
    path.write_text(f"""
rules:
  - name: {name}
    kpi: churn_rate
    window: 1d
    segments: [all]
    op: ">"
    threshold: 0.2
    min_samples: 10
    for: 3s
    keep_firing_for: 0s
    severity: critical
    summary: "Churn {{value:.0%}} over 1 day in {{segment}}"
    description: "{{samples}} customers at the start of the window"
    runbook_url: https://example.invalid/runbook#churn
    dashboard_url: https://example.invalid/d/overview
""")
    return path


def test_churn_spike_pages_once_survives_a_restart_and_resolves(stack: str, tmp_path: Path) -> None:
    receiver = Receiver()
    name = f"E2EChurnSpike{uuid.uuid4().hex[:8]}"
    with alertmanager(tmp_path, receiver.port) as am_url:
        base = isolated_env(RETENTION_CLOCK="event", RETENTION_ALERTMANAGER_URL=am_url,
                            RETENTION_ALERT_RULES=str(rule_file(tmp_path, name)),
                            RETENTION_ALERT_INTERVAL="1s", RETENTION_ALERT_RESEND="2s")
        a = WorkerProcess(base).start()
        b = WorkerProcess(another_worker(base))
        try:
            b.start()
            poll(lambda: len(a.kpis("2025")["worker"]["partitions"]) + len(b.kpis("2025")["worker"]["partitions"])
                 == 4, 60, "both workers to share the partitions")
            signups = [event("customer.signed_up", T0 - timedelta(days=5), {"customer_id": f"c{i}"}) for i in range(20)]
            churns = [event("customer.churned", T0 - timedelta(hours=i), {"customer_id": f"c{i}"}) for i in range(6)]
            produce(stack, lifecycle_messages(base, signups + churns))
            published = time.monotonic()

            firing = poll(lambda: receiver.received(name, "firing"), 60, "the churn spike page")
            delay = firing[0][0] - published
            alert = firing[0][1]
            assert alert["labels"] == {"alertname": name, "severity": "critical", "kpi": "churn_rate",
                                       "window": "1d", "segment": "all"}
            assert alert["annotations"]["summary"] == "Churn 30% over 1 day in all"  # 6 lost / 20 at the start
            assert alert["annotations"]["description"] == "20 customers at the start of the window"
            assert alert["annotations"]["runbook_url"] == "https://example.invalid/runbook#churn"
            print(f"delay from publishing the breaching events to the page: {delay:.1f}s")

            # `alerts test`: which rules would fire at the end of a period, and why
            cli = subprocess.run(
                [sys.executable, "-m", "retention_monitor.cli", "alerts", "test", "--json", "--url", a.url,
                 "--period", "2025-03-09T00:00:00Z/2025-03-10T12:00:01Z"],
                capture_output=True, text=True, cwd=ROOT, env={**os.environ, **base}, check=True,
            )
            (row,) = json.loads(cli.stdout)["rules"]
            assert (row["rule"], row["segment"], row["would_fire"], row["value"], row["samples"]) == (
                name, "all", True, 0.3, 20)

            # kill -9 the owner of segment "all" while firing, restart it: the state in Redis carries the
            # firing alert over, so it is re-sent with the same start, neither resolved nor paged again
            state_key = f"retention:{base['RETENTION_APP_ID']}:alert:{name}:all"
            redis = Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
            firing_since = poll(lambda: redis.hget(state_key, "firing_since"), 30, "the alert state in Redis")
            owner_worker = a if owner("all", 4) in a.kpis("2025")["worker"]["partitions"] else b
            assert owner_worker.proc is not None
            owner_worker.proc.kill()
            owner_worker.proc.wait()
            owner_worker.start()
            poll(lambda: sum(w.metric_sum("retention_alerts_sent_total") for w in (a, b)) >= 3, 60,
                 "re-sends after the restart")
            assert redis.hget(state_key, "firing_since") == firing_since
            assert receiver.alerts(name, "resolved") == []

            # recovery: enough new customers for the next day's window that churn falls below 20 %
            later = [event("customer.signed_up", T0 + timedelta(days=2), {"customer_id": f"n{i}"}) for i in range(30)]
            produce(stack, lifecycle_messages(base, later))
            resolved = poll(lambda: receiver.received(name, "resolved"), 60, "the resolved notification")
            assert resolved[0][1]["labels"]["alertname"] == name
            pages = {a_["startsAt"] for a_ in receiver.alerts(name, "firing")}
            assert len(pages) == 1, f"paged more than once: {pages}"
        finally:
            a.stop()
            b.stop()
