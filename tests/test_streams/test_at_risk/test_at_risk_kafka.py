"""At-risk customers through a real worker and the real local Kafka: one customer per reason, one that is
fine, one quiet C customer below the threshold and one that recovers; then the ``customer.at_risk``
events on the topic, ``/at-risk``, the CLI, the gauge and the alert rule reading the count. And the same
customers while partitions move between two workers and back: nobody lost, nothing said twice."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime
from itertools import pairwise
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fixtures import (
    ROOT,
    WorkerProcess,
    converge,
    encode,
    event,
    free_port,
    get_json,
    isolated_env,
    metric_value,
    poll,
    produce,
    running_worker,
    samples,
)

from core.periods import to_us
from core.settings import Settings
from streams.at_risk.registry import source_of

pytestmark = pytest.mark.integration


def lifecycle(cid: str, day: str, type_: str = "customer.signed_up", **data: Any) -> dict[str, Any]:
    return event(type_, f"2025-{day}Z", {"customer_id": cid, **data})


def order(cid: str, oid: str, day: str, amount: float) -> dict[str, Any]:
    return lifecycle(cid, day, "order.placed", order_id=oid, amount=amount, currency="EUR")


PHASE_1 = [
    *(lifecycle(c, "01-01T08:00:00") for c in ("quiet-a", "detractor", "complaint", "frequency", "refunds", "fine",
                                               "quiet-c", "recovers")),
    order("quiet-a", "qa1", "01-02T10:00:00", 5000), order("quiet-a", "qa2", "01-03T10:00:00", 5000),
    lifecycle("detractor", "03-20T10:00:00", "survey.nps", score=2),
    lifecycle("complaint", "03-25T09:00:00", "ticket.opened", ticket_id="t-1", kind="complaint", category="billing"),
    *(order("frequency", f"f{d}", f"02-{d:02d}T12:00:00", 20) for d in (1, 8, 15, 22)),
    order("refunds", "r1", "03-01T12:00:00", 30), order("refunds", "r2", "03-02T12:00:00", 30),
    lifecycle("refunds", "03-10T12:00:00", "order.refunded", order_id="r1", amount=30, currency="EUR"),
    lifecycle("refunds", "03-12T12:00:00", "order.returned", order_id="r2"),
    order("fine", "x1", "03-28T12:00:00", 50),
    lifecycle("recovers", "03-20T12:00:00", "ticket.opened", ticket_id="t-2", kind="complaint"),
    lifecycle("fine", "03-31T12:00:00", "survey.nps", score=10),
]
PHASE_2 = [
    lifecycle("recovers", "03-30T08:00:00", "ticket.replied", ticket_id="t-2", author="agent"),
    lifecycle("recovers", "03-30T09:00:00", "ticket.resolved", ticket_id="t-2"),
    lifecycle("fine", "04-01T12:00:00", "survey.nps", score=9),
]
# customer -> (score, class, reason codes, at risk since); threshold 20 in this test, so every reason
# alone is enough, except going quiet for a C customer (weight 10)
AT_RISK = {
    "quiet-a": (40, "A", ["gone_quiet"], "2025-03-04T10:00:00Z"),  # last order + 60 days
    "detractor": (35, "C", ["detractor"], "2025-03-20T10:00:00Z"),
    "complaint": (35, "C", ["complaint_past_sla"], "2025-03-26T09:00:00Z"),  # no agent reply within 24h
    "frequency": (25, "C", ["purchase_frequency_falling"], "2025-03-08T12:00:00Z"),  # 14 days after Feb 22
    "refunds": (20, "C", ["refunds"], "2025-03-12T12:00:00Z"),
}
BY_SCORE = ["quiet-a", "detractor", "complaint", "frequency", "refunds"]


def messages(env: dict[str, str], events: list[dict[str, Any]]) -> list[tuple[str, bytes | None, bytes]]:
    topic = {"customer": "LIFECYCLE", "order": "LIFECYCLE", "ticket": "SUPPORT", "survey": "FEEDBACK"}
    return [(env[f"RETENTION_TOPIC_{topic[e['type'].split('.')[0]]}"], e["data"]["customer_id"].encode(), encode(e))
            for e in events]


def summary(answer: dict[str, Any]) -> dict[str, tuple[int, str | None, list[str], str | None]]:
    return {c["customer_id"]: (c["score"], c["abc_class"], [r["code"] for r in c["reasons"]], c["since"])
            for c in answer["customers"]}


def read_topic(bootstrap: str, topic: str, timeout: float = 30) -> list[Any]:
    """Every message of ``topic`` up to where it ends now (read with a deadline)."""
    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(Settings().partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out: list[Any] = []
            deadline = time.monotonic() + timeout
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                assert time.monotonic() < deadline, f"{topic} not read to its end within {timeout}s"
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(records)
            return sorted(out, key=lambda r: (r.partition, r.offset))
        finally:
            await consumer.stop()

    return asyncio.run(run())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "retention_monitor.cli", "at-risk", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False, timeout=60)


def at_risk_env() -> dict[str, str]:
    # The events span January to April and go to four topics at once; the worker reads the topics in any
    # interleaving, so a customer's January sign-up may come after its March ticket. Lateness is measured
    # per stream (metrics.lateness), so under the default 7 days nothing may be dead-lettered for that.
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_RISK_THRESHOLD="20")
    env["RETENTION_TOPIC_AT_RISK"] = env["RETENTION_TOPIC_DLQ"].removesuffix(".dlq") + ".at_risk"
    return env


AFTER_PHASE_1 = {**AT_RISK, "recovers": (35, "C", ["complaint_past_sla"], "2025-03-21T12:00:00Z")}


def test_at_risk_customers_through_kafka(stack: str) -> None:
    env = at_risk_env()
    topic = env["RETENTION_TOPIC_AT_RISK"]
    with running_worker(env) as worker:
        produce(stack, messages(env, PHASE_1))
        converge(lambda: summary(get_json(f"{worker.url}/at-risk")), AFTER_PHASE_1,
                 "every customer at risk after phase 1", timeout=60)
        produce(stack, messages(env, PHASE_2))
        converge(lambda: summary(get_json(f"{worker.url}/at-risk")), AT_RISK, "recovers no longer at risk",
                 timeout=60)

        answer = get_json(f"{worker.url}/at-risk")
        assert [c["customer_id"] for c in answer["customers"]] == BY_SCORE  # highest score, then longest at risk
        assert answer["total"] == 5
        assert answer["counts"] == {"A": 1, "B": 0, "C": 4, "none": 0}
        complaint = next(c for c in answer["customers"] if c["customer_id"] == "complaint")
        assert complaint["reasons"] == [{"code": "complaint_past_sla", "weight": 35, "since": "2025-03-26T09:00:00Z",
                                         "detail": "complaint t-1 (billing) no agent reply since 2025-03-25T09:00Z, "
                                                   "SLA 24h"}]
        assert (complaint["threshold"], complaint["active"], complaint["at_risk"]) == (20, True, True)
        only_a = get_json(f"{worker.url}/at-risk?class=A")
        assert [c["customer_id"] for c in only_a["customers"]] == ["quiet-a"]
        assert only_a["total"] == 1
        top = get_json(f"{worker.url}/at-risk?limit=2&min_score=25")
        assert ([c["customer_id"] for c in top["customers"]], top["total"]) == (["quiet-a", "detractor"], 4)

        rejected = {k: v for k, v in samples(worker.metrics()).items() if k[0] == "retention_events_rejected_total"}
        assert sum(rejected.values()) == 0, rejected
        check_events(read_topic(stack, topic), source_of(env["RETENTION_APP_ID"]))
        check_cli(worker.url, answer)

        # counts without customer ids, from the worker that owns segment all (this one)
        converge(lambda: {c: metric_value(worker.metrics(), "retention_customers_at_risk", {"class": c})
                          for c in ("A", "B", "C", "none")},
                 {"A": 1.0, "B": 0.0, "C": 4.0, "none": 0.0}, "the at-risk gauge")
        labels = {names for (name, names) in samples(worker.metrics()) if name == "retention_customers_at_risk"}
        assert {tuple(k for k, _ in names) for names in labels} == {("class",)}

        # the shipped rule reads the same: the one A customer is at risk (a share of 1.0), but one customer
        # is below the rule's min_samples, so it would not fire
        rules = {r["rule"]: r for r in get_json(f"{worker.url}/alerts?period=2025-Q2")["rules"]}
        rule = rules["ACustomersAtRisk"]
        assert (rule["value"], rule["samples"], rule["would_fire"], rule["kind"]) == (1.0, 1, False, "static")


def test_partitions_moving_between_workers(stack: str) -> None:
    env_a = at_risk_env()
    env_b = {**env_a, "RETENTION_WEB_PORT": str(free_port()), "RETENTION_DATA_DIR": env_a["RETENTION_DATA_DIR"] + "-b"}
    a, b = WorkerProcess(env_a), WorkerProcess(env_b)
    try:
        a.start()
        produce(stack, messages(env_a, PHASE_1))
        converge(lambda: summary(get_json(f"{a.url}/at-risk")), AFTER_PHASE_1, "phase 1 on one worker", timeout=60)
        b.start()  # the group rebalances: b takes over some partitions, syncs with the topic, sweeps them
        poll(lambda: sorted(scored(a) + scored(b)) == [0, 1, 2, 3] and scored(a), 60,
             "both workers to score the partitions they own")
        produce(stack, messages(env_a, PHASE_2))
        for worker in (a, b):  # either answers for every customer
            converge(lambda w=worker: summary(get_json(f"{w.url}/at-risk")), AT_RISK, f"phase 2 at {worker.url}",
                     timeout=60)
        b.stop()  # a takes every partition back and sweeps the ones it gets again
        poll(lambda: scored(a) == [0, 1, 2, 3], 60, "a to score every partition again")
        converge(lambda: summary(get_json(f"{a.url}/at-risk")), AT_RISK, "after the hand-back", timeout=30)
        records = read_topic(stack, env_a["RETENTION_TOPIC_AT_RISK"])
        events = [(r.key.decode(), json.loads(r.value)["data"]) for r in records]
        for cid in {*AT_RISK, "recovers"}:
            said = [data for key, data in events if key == cid]
            # an owner that takes a partition over knows what was published for it: no repeats
            assert all(x != y for x, y in pairwise(said)), cid
            assert said[-1]["at_risk"] == (cid in AT_RISK)
    finally:
        b.stop()
        a.stop()


def scored(worker: WorkerProcess) -> list[int]:
    partitions: list[int] = get_json(f"{worker.url}/at-risk")["worker"]["partitions_scored"]
    return partitions


def check_events(records: list[Any], source: str) -> None:
    """CloudEvents keyed by customer; the latest per customer is its status."""
    events = [(r.key.decode(), json.loads(r.value)) for r in records]
    for key, ev in events:
        assert (ev["specversion"], ev["type"], ev["source"]) == ("1.0", "customer.at_risk", source)
        assert ev["data"]["customer_id"] == key
    latest = {key: ev for key, ev in events}
    assert {k for k, ev in latest.items() if ev["data"]["at_risk"]} == set(AT_RISK)
    for cid, (score, cls, codes, since) in AT_RISK.items():
        data = latest[cid]["data"]
        assert (data["score"], data["abc_class"], [r["code"] for r in data["reasons"]], data["since"]) == \
            (score, cls, codes, since), cid
    statuses = [ev["data"]["at_risk"] for key, ev in events if key == "recovers"]
    assert statuses[-2:] == [True, False]
    assert latest["recovers"]["data"]["reasons"] == []
    assert to_us_of(latest["recovers"]["time"]) > to_us_of("2025-03-30T09:00:00Z")
    assert not any(ev["data"]["at_risk"] for key, ev in events if key in ("fine", "quiet-c"))
    assert len({ev["id"] for _, ev in events}) == len(events)


def check_cli(url: str, answer: dict[str, Any]) -> None:
    """The CLI answers what /at-risk answers; the table shows who and why; bad input exits 2."""
    done = cli("--json", "--url", url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == answer
    table = cli("--class", "A", "--url", url)
    assert table.returncode == 0, table.stderr
    assert "quiet-a" in table.stdout
    assert "gone_quiet" in table.stdout
    assert "detractor" not in table.stdout
    bad = cli("--min-score", "101", "--url", url)
    assert bad.returncode == 2
    assert "argument --min-score: '101' is not a whole number 0-100" in bad.stderr


def to_us_of(text: str) -> int:
    return to_us(datetime.fromisoformat(text.replace("Z", "+00:00")))
