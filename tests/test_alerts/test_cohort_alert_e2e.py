"""End to end: decaying cohorts (tests/cohort_events.py) through the real Kafka into two workers, a cohort
rule evaluated on the cohort table of the whole cluster, and its alert in a real Alertmanager exactly once.

Each worker holds about half of every cohort's 10 customers: with ``min_customers: 10`` the rule is
evaluated only on the merged table, so the alert's numbers are the cluster's or there is no alert.
And the demo's ``cohort-decay`` scenario pages through the shipped rule."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from alert_fixtures import Receiver, alertmanager, am_alerts
from cohort_events import decay_events
from demo_traffic import demo_messages
from fixtures import (
    WorkerProcess,
    another_worker,
    get_json,
    isolated_env,
    lifecycle_messages,
    poll,
    produce,
    running_worker,
)

from core.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def rule_file(tmp: Path, name: str) -> Path:
    path = tmp / "rules.yml"
    path.write_text(f"""
rules:
  - name: {name}
    kind: cohort
    kpi: cohort_customer_retention
    window: month
    age: 1
    newest: 2
    previous: 3
    op: ">"
    threshold: 0.2
    min_customers: 10
    for: 2s
    severity: warning
    summary: "Month-1 retention {{value:.0%}} of {{cohorts}}, {{drop:.0%}} below {{baseline:.0%}} in {{segment}}"
    description: "{{samples}} customers in the smallest cohort"
    labels: {{team: onboarding}}
""")
    return path


def test_a_cohort_drop_is_one_alert_in_alertmanager(stack: str, tmp_path: Path) -> None:
    receiver = Receiver()
    name = f"E2ECohortDrop{uuid.uuid4().hex[:8]}"
    labels = {"alertname": name, "severity": "warning", "kpi": "cohort_customer_retention", "window": "month",
              "segment": "all", "team": "onboarding"}
    with alertmanager(tmp_path, receiver.port) as am_url:
        env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALERTMANAGER_URL=am_url,
                           RETENTION_ALERT_RULES=str(rule_file(tmp_path, name)),
                           RETENTION_ALERT_INTERVAL="1s", RETENTION_ALERT_RESEND="1s")
        workers = [WorkerProcess(env), WorkerProcess(another_worker(env))]
        try:
            for worker in workers:
                worker.start()
            poll(lambda: sum(len(w.kpis("2025")["worker"]["partitions"]) for w in workers) == 4
                 and all(w.kpis("2025")["worker"]["partitions"] for w in workers), 60,
                 "both workers to share the partitions")
            produce(stack, lifecycle_messages(env, decay_events()))

            (alert,) = poll(lambda: am_alerts(am_url, name), 90, "the cohort alert in Alertmanager")
            assert alert["labels"] == labels
            assert alert["annotations"]["summary"] == (
                "Month-1 retention 60% of 2025-04, 2025-05, 33% below 90% in all")
            assert alert["annotations"]["description"] == "10 customers in the smallest cohort"
            # re-sent every second by the owner of segment all: still one alert, and one notification
            poll(lambda: sum(w.metric_sum("retention_alerts_sent_total") for w in workers) >= 3, 60, "two re-sends")
            assert [a["labels"] for a in am_alerts(am_url, name)] == [labels]
            notified = poll(lambda: receiver.alerts(name, "firing"), 30, "the notification")
            assert [a["labels"] for a in notified] == [labels]

            # `alerts test` (GET /alerts) on the other worker sees the same cohorts and numbers
            rows = [r for w in workers for r in get_json(f"{w.url}/alerts?period=2025-07-02")["rules"]]
            assert {(r["would_fire"], tuple(r["cohorts"]), r["samples"], r["min_customers"], round(r["drop"], 4))
                    for r in rows} == {(True, ("2025-04", "2025-05"), 10, 10, 0.3333)}
        finally:
            for worker in workers:
                worker.stop()


def shipped_rule(tmp: Path, name: str) -> tuple[Path, dict[str, str]]:
    """The shipped CohortRetentionDrop rule renamed, with a ``for`` of one second (the demo's 90 days of
    history arrive in seconds, not over half an hour), and the labels its alert carries."""
    shipped = yaml.safe_load((ROOT / "alerts" / "rules.yml").read_text())["rules"]
    (rule,) = [r for r in shipped if r["name"] == "CohortRetentionDrop"]
    rule = {**rule, "name": name, "for": "1s"}
    path = tmp / "rules.yml"
    path.write_text(yaml.safe_dump({"rules": [rule]}))
    labels = {"alertname": name, "severity": rule["severity"], "kpi": rule["kpi"], "window": rule["window"],
              "segment": "all", **rule.get("labels", {})}
    return path, labels


def test_the_cohort_decay_demo_pages_once_through_the_shipped_rule(stack: str, tmp_path: Path) -> None:
    receiver = Receiver()
    name = f"E2ECohortDecay{uuid.uuid4().hex[:8]}"
    rules, labels = shipped_rule(tmp_path, name)
    with alertmanager(tmp_path, receiver.port) as am_url:
        env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALERTMANAGER_URL=am_url,
                           RETENTION_ALERT_RULES=str(rules), RETENTION_ALERT_INTERVAL="1s")
        default = Settings().topics
        topics = {default.lifecycle: env["RETENTION_TOPIC_LIFECYCLE"], default.support: env["RETENTION_TOPIC_SUPPORT"],
                  default.feedback: env["RETENTION_TOPIC_FEEDBACK"], default.team: env["RETENTION_TOPIC_TEAM"]}
        with running_worker(env) as worker:
            messages = demo_messages("cohort-decay")
            produce(stack, [(topics[topic], key, value) for topic, key, value in messages])
            poll(lambda: worker.metric_sum("retention_events_total") >= len(messages), 180, "the demo's events applied")
            (alert,) = poll(lambda: am_alerts(am_url, name), 90, "the cohort alert in Alertmanager")
            assert alert["labels"] == labels
            assert "below the" in alert["annotations"]["summary"]
            notified = poll(lambda: receiver.alerts(name, "firing"), 30, "the notification")
            assert [a["labels"] for a in notified] == [labels]
