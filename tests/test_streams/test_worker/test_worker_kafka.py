"""A real worker process against the real local Kafka: KPIs through /kpis and /metrics, and the DLQ."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from fixtures import (
    ROOT,
    consume_all,
    encode,
    event,
    get_json,
    isolated_env,
    metric_value,
    poll,
    produce,
    running_worker,
    seed_example,
)

pytestmark = pytest.mark.integration


def lifecycle_messages(env: dict[str, str], events: list[dict[str, Any]]) -> list[tuple[str, bytes | None, bytes]]:
    return [(env["RETENTION_TOPIC_LIFECYCLE"], e["data"]["customer_id"].encode(), encode(e)) for e in events]


@pytest.mark.parametrize(
    ("start", "new", "lost", "retention", "churn"),
    [(20, 5, 1, 19 / 20, 1 / 20), (44, 12, 13, 31 / 44, 13 / 44)],
    ids=["seed-000-example-1", "seed-000-example-2"],
)
def test_worked_example_through_kafka(
    stack: str, start: int, new: int, lost: int, retention: float, churn: float
) -> None:
    env = isolated_env(RETENTION_CLOCK="event")
    events = seed_example(start, new, lost)
    with running_worker(env) as worker:
        # published twice: redelivered events (same ids) must not count twice
        produce(stack, lifecycle_messages(env, events) + lifecycle_messages(env, events[::-1]))
        poll(
            lambda: metric_value(worker.metrics(), "retention_events_duplicate_total", {}) == len(events),
            60,
            "every redelivered event to be seen as a duplicate",
        )
        expected = {"B": start, "E": start + new - lost, "N": new, "L": lost, "R": 0, "moved_in": 0, "moved_out": 0}

        def lifecycle_inputs() -> dict[str, int]:
            inputs = worker.kpis("2025-Q1")["inputs"]
            return {k: inputs[k] for k in expected}

        # the KPI store follows the changelog: poll until it has every state, then check exactly
        poll(lambda: lifecycle_inputs() == expected, 30, f"the KPI store to reach {expected}")
        answer = worker.kpis("2025-Q1")
        assert answer["kpis"]["retention_rate"] == retention
        assert answer["kpis"]["churn_rate"] == churn

        text = worker.fresh_metrics()
        # clock=event: the current quarter is the quarter of the newest event, 2025-Q1
        assert (
            metric_value(text, "retention_customer_retention_ratio", {"window": "quarter", "segment": "all"})
            == retention
        )
        assert metric_value(text, "retention_customer_churn_ratio", {"window": "quarter", "segment": "all"}) == churn
        assert metric_value(text, "retention_customers_active", {"segment": "all"}) == start + new - lost
        # the loop watch ticks in the worker (ten times a second): what a latency spike is checked against
        assert (metric_value(text, "retention_event_loop_stall_seconds_count", {}) or 0) > 0
        assert metric_value(text, "retention_apply_buffer_full_total", {}) is not None  # the sensor is in the app

        assert get_json(f"{worker.url}/ready") == {
            "ready": True, "partitions": [0, 1, 2, 3], "caught_up": True, "restored": [0, 1, 2, 3]}

        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "retention_monitor.cli",
                "kpis",
                "--period",
                "2025-Q1",
                "--json",
                "--url",
                worker.url,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        assert json.loads(cli.stdout)["kpis"]["retention_rate"] == retention


MALFORMED = {
    "not_json": b"this is not json {",
    "unknown_type": encode(event("customer.teleported", "2025-01-05T00:00:00Z", {"customer_id": "m1"})),
    "missing_field": encode(event("customer.churned", "2025-01-05T00:00:00Z", {"reason": "price"})),
    "bad_time": encode(event("customer.signed_up", "2025-01-05 00:00:00", {"customer_id": "m2"})),
    "wrong_type": encode(event("customer.signed_up", "2025-01-05T00:00:00Z", {"customer_id": 42})),
}


def test_malformed_messages_land_in_the_dlq_with_their_reason(stack: str) -> None:
    env = isolated_env(RETENTION_CLOCK="event")
    topic = env["RETENTION_TOPIC_LIFECYCLE"]
    valid = seed_example(3, 2, 1)
    messages: list[tuple[str, bytes | None, bytes]] = []
    bad = list(MALFORMED.items())
    for i, ev in enumerate(valid):  # malformed messages interleaved with valid ones
        messages.append((topic, ev["data"]["customer_id"].encode(), encode(ev)))
        if i < len(bad):
            messages.append((topic, None, bad[i][1]))
    with running_worker(env) as worker:
        produce(stack, messages)
        dead = consume_all(stack, env["RETENTION_TOPIC_DLQ"], want=len(MALFORMED), timeout=60)
        by_reason = {dict(m.headers)["reason"].decode(): m for m in dead}
        assert set(by_reason) == set(MALFORMED)
        for reason, original in MALFORMED.items():
            msg = by_reason[reason]
            assert msg.value == original, reason
            headers = dict(msg.headers)
            assert headers["source_topic"].decode() == topic
            assert headers["message"], reason
        def counts() -> tuple[int, ...]:
            i = worker.kpis("2025-Q1")["inputs"]
            return (i["B"], i["N"], i["L"], i["E"])

        poll(lambda: counts() == (3, 2, 1, 4), 60, "the valid events around the malformed ones to count")
        text = worker.fresh_metrics()
        for reason in MALFORMED:
            assert metric_value(text, "retention_events_rejected_total", {"reason": reason}) == 1.0, reason
