"""The hand-computed cohort tables (tests/cohort_events.py) through the real broker and a worker process:
``GET /cohorts`` and ``retention-monitor cohorts`` give the golden numbers, and refuse bad input in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from cohort_events import EXPECTED_CUSTOMERS, EXPECTED_REVENUE, EXPECTED_SIZES, shop_events
from fixtures import ROOT, WorkerProcess, converge, encode, get_json, isolated_env, produce, running_worker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker(stack: str) -> Iterator[WorkerProcess]:
    # d's sign-up is published after its churn, 44 days later in event time: a lateness the golden tests allow
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALLOWED_LATENESS="60d")
    with running_worker(env) as w:
        events = shop_events()
        produce(stack, [(env["RETENTION_TOPIC_LIFECYCLE"], ev["data"]["customer_id"].encode(), encode(ev))
                        for ev in events])
        converge(lambda: (w.metric_sum("retention_events_total"), w.metric_sum("retention_events_duplicate_total")),
                 (float(len(events)), 1.0), "every event read, b's repeated churn as a duplicate")
        yield w


def cells(answer: dict[str, Any], key: str = "numerator") -> dict[str, list[Any]]:
    return {row["cohort"]: [cell[key] for cell in row["ages"]] for row in answer["cohorts"]}


def test_the_golden_customer_table(worker: WorkerProcess) -> None:
    # the worker may still be reading the changelog the last events wrote: wait for the whole table
    answer = converge(lambda: cells(get_json(f"{worker.url}/cohorts?by=month&from=2025-01&to=2025-04")),
                      EXPECTED_CUSTOMERS, "the golden customer table")
    full = get_json(f"{worker.url}/cohorts?by=month&from=2025-01&to=2025-04")
    assert {row["cohort"]: row["customers"] for row in full["cohorts"]} == EXPECTED_SIZES
    assert full["as_of"] == "2025-04-10T00:00:00.000001+00:00"
    assert full["timezone"] == "UTC"
    assert answer == EXPECTED_CUSTOMERS


def test_the_golden_revenue_and_segment_tables(worker: WorkerProcess) -> None:
    base = f"{worker.url}/cohorts?by=month&from=2025-01&to=2025-02"
    assert converge(lambda: cells(get_json(f"{base}&kind=revenue")), EXPECTED_REVENUE, "the revenue table")
    basic = get_json(f"{base}&segment=plan:basic")
    assert cells(basic) == {"2025-01": [1, 1, 1, 1], "2025-02": [1, 1, 0]}  # c moved to pro, still basic's


@pytest.mark.parametrize(("query", "message"), [
    ("by=day&from=2025-01", "cohort unit 'day' is not one of week, month, quarter"),
    ("by=month", "missing ?from=; the first cohort, e.g. 2025-03"),
    ("from=2025-01&segment=plan:gold", "segment 'plan:gold' is not one of all, plan:basic"),
    ("from=2025-01&segment=abc:A", "segment 'abc:A': cohorts are by sign-up segment"),
    ("from=2025-01&as_of=yesterday", "as_of 'yesterday': Invalid isoformat string"),
])
def test_a_bad_query_is_a_400_naming_the_value(worker: WorkerProcess, query: str, message: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        get_json(f"{worker.url}/cohorts?{query}")
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error"].startswith(message)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "retention_monitor.cli", "cohorts", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_command_prints_the_table_and_json(worker: WorkerProcess) -> None:
    shown = cli("--from", "2025-01", "--to", "2025-02", "--url", worker.url)
    assert shown.returncode == 0, shown.stderr
    assert "75.0 %" in shown.stdout  # January, age 0
    assert "50.0 %*" in shown.stdout  # February, age 2: April, provisional
    raw = cli("--from", "2025-01", "--to", "2025-02", "--kind", "revenue", "--url", worker.url, "--json")
    assert raw.returncode == 0, raw.stderr
    assert cells(json.loads(raw.stdout)) == EXPECTED_REVENUE


def test_the_command_exits_2_on_a_refused_query(worker: WorkerProcess) -> None:
    refused = cli("--from", "2025-W03", "--url", worker.url)  # a week label for month cohorts
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "cohort period '2025-W03' is not a month like 2025-03" in refused.stderr
