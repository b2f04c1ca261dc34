"""Both alert paths on (alert_path = "both"), end to end: a worker posting to a real Alertmanager, and a
Prometheus of this test evaluating the rules `alerts prometheus` generates from the same rule file on that
worker's /metrics, alerting to the same Alertmanager. One condition is one alert there, whichever path
posted it last, and one notification.

Two Alertmanagers: the stack's (shared; the test's alert has a name of its own and is resolved at the end),
read through its API, and one of the test's own routing to a webhook receiver, which counts notifications.
With alert_path = "prometheus" only Prometheus posts."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_fixtures import Receiver, alertmanager, am_alerts
from fixtures import Fatal, WorkerProcess, event, free_port, get_json, isolated_env, lifecycle_messages, poll, produce

from alerts import prometheus
from alerts.delivery import rfc3339

pytestmark = pytest.mark.integration

STACK_ALERTMANAGER = "http://127.0.0.1:9093"
GROUP_INTERVAL_S = 2  # of the test's own Alertmanager (alert_fixtures.alertmanager)
T0 = datetime(2025, 3, 10, 12, tzinfo=UTC)


def rule_file(tmp: Path, name: str) -> Path:
    # severity info: the stack's Alertmanager inhibits warnings and routes critical alerts to the pager
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
    severity: info
    summary: "Churn {{value:.0%}} over 1 day in {{segment}}"
    runbook_url: https://example.invalid/runbook#churn
    labels: {{team: e2e}}
""")
    return path


@contextmanager
def prometheus_server(tmp: Path, rules: Path, worker: str, am_url: str) -> Iterator[str]:
    """A Prometheus of its own (the stack's is shared) scraping ``worker`` and evaluating ``rules`` every
    second, re-sending firing alerts every second to ``am_url``; yields its URL."""
    binary = shutil.which("prometheus")
    assert binary, "the stack installs prometheus"
    url = f"http://127.0.0.1:{free_port()}"
    config = tmp / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am_url.removeprefix("http://")]}]}]},
        "scrape_configs": [{"job_name": "retention-monitor", "static_configs": [{"targets": [worker]}]}],
    }))
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'prom-data'}",
                             f"--web.listen-address={url.removeprefix('http://')}", f"--web.external-url={url}",
                             "--rules.alert.resend-delay=1s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200, 30, "prometheus to start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def am_groups(am_url: str, name: str) -> list[list[dict[str, Any]]]:
    """The alerts of every Alertmanager group holding an alert called ``name``."""
    groups = get_json(f"{am_url}/api/v2/alerts/groups")
    return [g["alerts"] for g in groups if any(a["labels"]["alertname"] == name for a in g["alerts"])]


def resolve(am_url: str, labels: dict[str, str]) -> None:
    """Tell Alertmanager the test's alert is over, so it does not linger in the shared one for minutes."""
    body = json.dumps([{"labels": labels, "startsAt": rfc3339(time.time() - 60), "endsAt": rfc3339(time.time())}])
    request = urllib.request.Request(f"{am_url}/api/v2/alerts", data=body.encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def breach(bootstrap: str, env: dict[str, str]) -> None:
    """6 of 20 customers lost in the last day: churn 30 % > 20 %, with B = 20 >= min_samples."""
    signups = [event("customer.signed_up", T0 - timedelta(days=5), {"customer_id": f"c{i}"}) for i in range(20)]
    churns = [event("customer.churned", T0 - timedelta(hours=i), {"customer_id": f"c{i}"}) for i in range(6)]
    produce(bootstrap, lifecycle_messages(env, signups + churns))


def both_paths_deliver(worker: WorkerProcess, prom: str, labels: dict[str, str]) -> None:
    """The worker counts what Alertmanager accepted; Prometheus fires the generated rule, same labels."""
    poll(lambda: worker.metric_sum("retention_alerts_sent_total") >= 2, 60, "the worker's deliveries")
    firing = poll(lambda: [a for a in get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
                           if a["labels"]["alertname"] == labels["alertname"] and a["state"] == "firing"],
                  60, "the generated rule firing in Prometheus")
    assert firing[0]["labels"] == labels  # no job, no instance: exactly the engine's labels


def one_alert_from_both(am_url: str, prom: str, labels: dict[str, str]) -> None:
    """Alertmanager holds one alert the whole time, posted now by one path, now by the other (the one
    that posted last gives its ``generatorURL``: Prometheus's, or none from a worker)."""
    sources: set[str] = set()

    def seen() -> bool:
        alerts = am_alerts(am_url, labels["alertname"])
        if len(alerts) != 1 or alerts[0]["labels"] != labels:  # no use waiting: fail at once
            raise Fatal(f"{len(alerts)} alerts for one condition: {alerts}")
        sources.add("prometheus" if alerts[0].get("generatorURL", "").startswith(prom) else "stream")
        return sources == {"prometheus", "stream"}

    poll(seen, 60, "the one alert posted by both paths", interval=0.1)
    (group,) = am_groups(am_url, labels["alertname"])
    assert [a["labels"] for a in group] == [labels]


@pytest.mark.parametrize("which", ["stack", "own"])
def test_one_condition_is_one_alert_with_both_paths_on(stack: str, tmp_path: Path, which: str) -> None:
    name = f"E2EBothPaths{uuid.uuid4().hex[:8]}"
    rules = rule_file(tmp_path, name)
    generated = prometheus.write(tmp_path / "retention-alerts.yml", rules)
    labels = {"alertname": name, "severity": "info", "kpi": "churn_rate", "window": "1d", "segment": "all",
              "team": "e2e"}
    receiver = Receiver()
    with ExitStack() as cleanup:
        am_url = STACK_ALERTMANAGER if which == "stack" else cleanup.enter_context(
            alertmanager(tmp_path, receiver.port))
        env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALERT_RULES=str(rules), RETENTION_ALERT_PATH="both",
                           RETENTION_ALERTMANAGER_URL=am_url, RETENTION_ALERT_INTERVAL="1s",
                           RETENTION_ALERT_RESEND="1s")
        cleanup.callback(resolve, am_url, labels)
        worker = WorkerProcess(env)
        cleanup.callback(worker.stop)
        worker.start()
        prom = cleanup.enter_context(prometheus_server(tmp_path, generated, worker.url.removeprefix("http://"),
                                                       am_url))
        breach(stack, env)
        both_paths_deliver(worker, prom, labels)
        one_alert_from_both(am_url, prom, labels)
        if which == "own":
            # Both paths' alerts are in: had they two label sets, the group would change and Alertmanager
            # notify again within a group interval. One notification, with one alert, over two of them.
            both_in = time.monotonic()
            poll(lambda: receiver.received(name, "firing"), 30, "the notification")
            poll(lambda: time.monotonic() > both_in + 2 * GROUP_INTERVAL_S + 1, 10, "two group intervals")
            assert [[a["labels"] for a in n["alerts"]] for n in receiver.notifications] == [[labels]]


def test_with_alert_path_prometheus_the_workers_post_nothing(stack: str, tmp_path: Path) -> None:
    name = f"E2EPromOnly{uuid.uuid4().hex[:8]}"
    rules = rule_file(tmp_path, name)
    generated = prometheus.write(tmp_path / "retention-alerts.yml", rules)
    receiver = Receiver()
    with ExitStack() as cleanup:
        am_url = cleanup.enter_context(alertmanager(tmp_path, receiver.port))
        env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALERT_RULES=str(rules),
                           RETENTION_ALERT_PATH="prometheus", RETENTION_ALERTMANAGER_URL=am_url,
                           RETENTION_ALERT_INTERVAL="1s", RETENTION_ALERT_RESEND="1s")
        worker = WorkerProcess(env)
        cleanup.callback(worker.stop)
        worker.start()
        prom = cleanup.enter_context(prometheus_server(tmp_path, generated, worker.url.removeprefix("http://"),
                                                       am_url))
        breach(stack, env)
        poll(lambda: receiver.received(name, "firing"), 60, "the notification of Prometheus's alert")
        # The stream path would re-send every second (alert_resend=1s) and replace the generatorURL: over
        # three of those seconds the alert stays Prometheus's and the worker delivers nothing.
        since = time.monotonic()
        poll(lambda: time.monotonic() > since + 3, 10, "three re-send intervals")
        (alert,) = am_alerts(am_url, name)
        assert alert.get("generatorURL", "").startswith(prom), alert  # none: a worker posted it
        assert worker.metric_sum("retention_alerts_sent_total") == 0
        # the engine still evaluates on request (`alerts test`, GET /alerts): the rule would fire
        (row,) = get_json(f"{worker.url}/alerts?period=2025-03-09T00:00:00Z/2025-03-10T12:00:01Z")["rules"]
        assert (row["rule"], row["would_fire"], row["samples"]) == (name, True, 20)
