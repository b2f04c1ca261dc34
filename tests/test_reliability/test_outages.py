"""Outages of Redis (alert state) and Alertmanager (delivery): processing goes on, alerts still get out,
state reconciles, and nothing pages twice."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_fixtures import Receiver, alertmanager
from fixtures import converge, encode, event, free_port, isolated_env, poll, produce, running_worker
from redis import Redis

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 10, 12, tzinfo=UTC)


def start_redis(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary, "the stack installs redis-server"
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = Redis(host="127.0.0.1", port=port, socket_timeout=2)
    poll(client.ping, 15, f"redis-server on port {port}")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


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
    for: 1s
    keep_firing_for: 0s
    severity: critical
    summary: "Churn {{value:.0%}} over 1 day in {{segment}}"
    description: "{{samples}} customers at the start of the window"
    runbook_url: https://example.invalid/runbook#churn
    dashboard_url: https://example.invalid/d/overview
""")
    return path


def breaching(env: dict[str, str]) -> list[tuple[str, bytes | None, bytes]]:
    """20 sign-ups, then 6 churns within a day: churn 30 % over 1 day."""
    signups = [event("customer.signed_up", T0 - timedelta(days=5), {"customer_id": f"c{i}"}) for i in range(20)]
    churns = [event("customer.churned", T0 - timedelta(hours=i), {"customer_id": f"c{i}"}) for i in range(6)]
    return [(env["RETENTION_TOPIC_LIFECYCLE"], e["data"]["customer_id"].encode(), encode(e)) for e in signups + churns]


def march(worker: Any) -> dict[str, int]:
    inputs = worker.kpis("2025-03")["inputs"]
    return {k: inputs[k] for k in ("N", "L", "E")}


def test_redis_down_processing_continues_and_state_reconciles(stack: str, tmp_path: Path) -> None:
    started = time.monotonic()
    receiver = Receiver()
    name = f"RedisDown{uuid.uuid4().hex[:8]}"
    redis_port = free_port()
    redis_proc = start_redis(tmp_path, redis_port)
    try:
        with alertmanager(tmp_path, receiver.port, free_port()) as am_url:
            env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALERTMANAGER_URL=am_url,
                               RETENTION_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
                               RETENTION_ALERT_RULES=str(rule_file(tmp_path, name)),
                               RETENTION_ALERT_INTERVAL="1s", RETENTION_ALERT_RESEND="2s")
            with running_worker(env) as worker:
                stop(redis_proc)
                produce(stack, breaching(env))
                converge(lambda: march(worker), {"N": 20, "L": 6, "E": 14}, "KPIs while Redis is down", timeout=60)
                poll(lambda: receiver.alerts(name, "firing"), 60, "the page while Redis is down")
                assert worker.metric_sum("retention_alert_state_redis_up") == 0
                assert worker.metric_sum("retention_alert_state_errors_total") > 0
                print(f"\nfired with Redis down after {time.monotonic() - started:.1f}s")

                redis_proc = start_redis(tmp_path, redis_port)
                poll(lambda: worker.metric_sum("retention_alert_state_redis_up") == 1
                     and worker.metric_sum("retention_alert_state_errors_total") > 0, 60, "Redis up again")
                redis = Redis(host="127.0.0.1", port=redis_port, decode_responses=True, socket_timeout=2)
                key = f"retention:{env['RETENTION_APP_ID']}:alert:{name}:all"
                poll(lambda: redis.hget(key, "firing_since"), 30, f"{key} reconciled into the new Redis")
                sent = worker.metric_sum("retention_alerts_sent_total")
                poll(lambda: worker.metric_sum("retention_alerts_sent_total") >= sent + 2, 30,
                     "re-sends after reconcile")
                assert worker.proc is not None
                assert worker.proc.poll() is None
                pages = {a["startsAt"] for a in receiver.alerts(name, "firing")}
                assert len(pages) == 1, f"paged more than once: {pages}"
                assert receiver.alerts(name, "resolved") == []
    finally:
        stop(redis_proc)
    print(f"test_redis_down runtime: {time.monotonic() - started:.1f}s")


def test_alertmanager_down_then_delivered(stack: str, tmp_path: Path) -> None:
    started = time.monotonic()
    receiver = Receiver()
    name = f"AmDown{uuid.uuid4().hex[:8]}"
    am_port = free_port()
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALERTMANAGER_URL=f"http://127.0.0.1:{am_port}",
                       RETENTION_ALERT_RULES=str(rule_file(tmp_path, name)),
                       RETENTION_ALERT_INTERVAL="1s", RETENTION_ALERT_RESEND="2s")
    with running_worker(env) as worker:
        produce(stack, breaching(env))
        converge(lambda: march(worker), {"N": 20, "L": 6, "E": 14}, "KPIs", timeout=60)
        poll(lambda: worker.metric_sum("retention_alert_outbox") > 0
             and worker.metric_sum("retention_alert_delivery_failures_total") > 0, 60, "queued, failing delivery")
        print(f"\nqueued with Alertmanager down after {time.monotonic() - started:.1f}s")
        with alertmanager(tmp_path, receiver.port, am_port):
            up = time.monotonic()
            firing = poll(lambda: receiver.alerts(name, "firing"), 90, "the page once Alertmanager is up")
            print(f"delivered {time.monotonic() - up:.1f}s after Alertmanager came up")
            assert firing[0]["labels"]["segment"] == "all"
            poll(lambda: worker.metric_sum("retention_alert_outbox") == 0, 30, "the outbox to drain")
    print(f"test_alertmanager_down runtime: {time.monotonic() - started:.1f}s")
