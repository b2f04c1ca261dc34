"""The publisher kit against the real Kafka and a real worker: the sample file of every type, the Python
producer (structured and binary mode), the console producer, and a broken binary-mode event dead-lettered."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from fixtures import ROOT, WorkerProcess, consume_all, converge, get_json, isolated_env

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "examples" / "events.jsonl"
SAMPLE_LINES = len(SAMPLE.read_text().splitlines())


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, cwd=ROOT, check=False, timeout=180,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    return result


def send_with_headers(bootstrap: str, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=b"broken", headers=headers)
        finally:
            await producer.stop()

    asyncio.run(go())


def test_every_publisher_example_is_accepted(stack: str, tmp_path: Path) -> None:
    env = isolated_env()
    prefix = env["RETENTION_TOPIC_LIFECYCLE"].removesuffix(".lifecycle")
    # the console producer sends a copy with other ids, customer and rep, so nothing is a duplicate
    copy = tmp_path / "events.jsonl"
    copy.write_text(SAMPLE.read_text().replace('"example-', '"console-').replace("c-1001", "c-2002")
                    .replace("r-42", "r-43"))
    worker = WorkerProcess(env)
    try:
        worker.start()
        this_year = datetime.now(UTC).year  # the Python producer's events happen now
        run(sys.executable, "-m", "retention_monitor.cli", "publish", str(SAMPLE), env=env)
        run(sys.executable, "examples/produce.py", "--bootstrap", stack, "--prefix", prefix, "--customer", "py-s")
        run(sys.executable, "examples/produce.py", "--bootstrap", stack, "--prefix", prefix, "--customer", "py-b",
            "--binary")
        run("sh", "examples/console-producer.sh", str(copy), env={"BOOTSTRAP": stack, "PREFIX": prefix})
        send_with_headers(stack, env["RETENTION_TOPIC_FEEDBACK"], b'{"customer_id": "x", "score": 9}',
                          [("ce_specversion", b"1.0"), ("ce_id", b"b-1"), ("ce_source", b"test"),
                           ("ce_time", b"2025-03-05T09:00:00Z")])  # no ce_type

        applied = 2 * SAMPLE_LINES + 2 * 3
        converge(lambda: (worker.metric_sum("retention_events_total"),
                          worker.metric_sum("retention_events_rejected_total")), (float(applied), 1.0),
                 "every published event applied, the broken one dead-lettered")
        assert worker.metric_sum("retention_events_duplicate_total") == 0
        assert worker.metric_sum("retention_events_ignored_total") == 0  # the sample tells a coherent story
        (letter,) = consume_all(stack, env["RETENTION_TOPIC_DLQ"], 1)
        assert dict(letter.headers)["reason"] == b"missing_field"

        # the sample's customer (and the console copy's) in March 2025: signed up, churned, won back
        inputs = get_json(f"{worker.url}/kpis?period=2025-03&segment=all")["inputs"]
        assert (inputs["N"], inputs["L"], inputs["R"], inputs["orders"], inputs["orders_refunded"]) == (2, 2, 2, 2, 2)
        # the Python producer's two customers, structured and binary mode alike, signed up today
        year = get_json(f"{worker.url}/kpis?period={this_year}&segment=plan:pro")["inputs"]
        assert (year["N"], year["orders"], year["nps_promoters"]) == (2, 2, 2)
    finally:
        worker.stop()
