"""Events/s of the monitor worker vs the raw-consumer ceiling, on the same simulated event set.

    .venv/bin/python bench/throughput.py --events 100000

Produces the events once into fresh topics on the local Kafka (``retention-monitor stack up`` first),
then consumes them (a) with a raw aiokafka ``getmany`` loop that only decodes and validates — the
ceiling — and (b) with a real ``retention-monitor worker`` process, timed from the moment it owns
its partitions until every message is applied or dead-lettered. Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from core.settings import Settings
from retention_monitor.commands import fetch_kpis, processed_count, ready
from streams.contract.decode import Event, decode
from streams.kafka.topics import ensure_topics
from streams.producers.publish import produce
from streams.producers.simulate import Simulator

ROOT = Path(__file__).resolve().parents[1]


def bench_settings(tag: str, partitions: int) -> Settings:
    return replace(
        Settings(),
        app_id=f"bench-{tag}",
        topic_lifecycle=f"bench-{tag}.lifecycle",
        topic_support=f"bench-{tag}.support",
        topic_feedback=f"bench-{tag}.feedback",
        topic_team=f"bench-{tag}.team",
        topic_dlq=f"bench-{tag}.dlq",
        partitions=partitions,
        # 180 days replayed in seconds over 4 topics: topics drift apart by days of event time, which the
        # default 7d lateness would dead-letter (README: publish history in order, or raise the lateness)
        allowed_lateness="3650d",
        web_port=6099,
        data_dir=f"/tmp/retention-bench-{tag}",
    )


async def ceiling(settings: Settings, total: int) -> float:
    """Seconds for a raw aiokafka consumer to fetch, decode and validate ``total`` messages."""
    consumer = AIOKafkaConsumer(
        *settings.topics.inputs, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
        auto_offset_reset="earliest", enable_auto_commit=False, max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    currencies = frozenset(settings.rates)
    seen = valid = 0
    try:
        await consumer.getmany(timeout_ms=0)
        start = time.perf_counter()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for record in records:
                    valid += isinstance(decode(record.value, currencies), Event)
                seen += sum(len(r) for r in batch.values()) if False else len(records)
        return time.perf_counter() - start
    finally:
        await consumer.stop()


def worker_run(settings: Settings, total: int, console: Console) -> tuple[float, float]:
    """(seconds to process ``total`` messages, worker peak RSS MiB) for one worker process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key, value in settings.to_dict().items():
        if isinstance(value, str | int) and not isinstance(value, bool):
            env[f"RETENTION_{key.upper()}"] = str(value)
    log = Path(f"{settings.data_dir}.log")
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{settings.web_port}"
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "retention_monitor.cli", "worker"], env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if ready(fetch_kpis(url, "2025", "all", timeout=2)):
                    break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
            time.sleep(0.1)
        start = time.perf_counter()
        with console.status("worker processing") as status:
            while (done := processed_count(url)) < total:
                status.update(f"worker processing: {done:,}/{total:,}")
                time.sleep(0.2)
        seconds = time.perf_counter() - start
        rss = _rss_mib(proc.pid)
        return seconds, rss
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    console = Console()
    settings = bench_settings(uuid.uuid4().hex[:8], args.partitions)
    asyncio.run(ensure_topics(settings.kafka, settings.topics))
    sim = Simulator(settings.facts, settings.topics, seed=7, scenario="steady", customers=args.customers)
    start_us = 1_735_689_600_000_000  # 2025-01-01
    messages = list(sim.events(start_us=start_us, count=args.events, rate=args.events / (180 * 86_400)))
    size = sum(len(v) for _, _, v in messages) / len(messages)
    console.print(f"{len(messages):,} events, mean {size:.0f} bytes, {args.customers:,} customers, "
                  f"{args.partitions} partitions")
    asyncio.run(produce(settings.kafka, messages, total=len(messages)))

    ceiling_s = asyncio.run(ceiling(settings, len(messages)))
    worker_s, rss = worker_run(settings, len(messages), console)

    table = Table(title="throughput on the same event set (one process each, 2 vCPU)")
    for col in ("consumer", "seconds", "events/s", "vs ceiling"):
        table.add_column(col, justify="right" if col != "consumer" else "left")
    c_rate, w_rate = len(messages) / ceiling_s, len(messages) / worker_s
    table.add_row("raw aiokafka getmany + decode (ceiling)", f"{ceiling_s:.2f}", f"{c_rate:,.0f}", "100 %")
    table.add_row("retention-monitor worker", f"{worker_s:.2f}", f"{w_rate:,.0f}", f"{100 * w_rate / c_rate:.1f} %")
    console.print(table)
    console.print(f"worker peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
