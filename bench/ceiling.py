"""The ceiling: a raw aiokafka ``getmany`` loop that only decodes and validates each value.

Run by ``bench.run`` as a child process (``python -m bench.ceiling …``); it reports through a status
file. Exactly bench/throughput.py's ceiling: ``streams.decode.decode`` of every value, nothing else;
after the backlog it keeps reading the paced slice and samples latency at decode.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer

from bench.cli import OneLineParser, int_range
from bench.meter import Meter
from bench.status import StatusFile
from core.settings import Settings
from streams.contract.decode import Event, decode


async def consume(bootstrap: str, topics: list[str], meter: Meter) -> int:
    """Read until the meter's target; returns how many values were valid."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, max_partition_fetch_bytes=4 << 20,
    )  # fmt: skip
    await consumer.start()
    settings = Settings()
    currencies = frozenset(settings.rates)
    valid = 0
    try:
        meter.begin()
        while not meter.finished:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batch.values():
                if meter.finished:
                    break
                if meter.seen + len(records) <= meter.expect:  # backlog: the hot loop, decode only
                    for record in records:
                        valid += isinstance(decode(record.value, currencies), Event)
                    meter.add(len(records))
                    continue
                for record in records:
                    valid += isinstance(decode(record.value, currencies), Event)
                    if meter.observe(record.timestamp):
                        break
    finally:
        await consumer.stop()
    return valid


def main() -> None:
    parser = OneLineParser(prog="bench.ceiling", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--expect", type=int_range(1, 10**9), required=True, help="backlog size")
    parser.add_argument("--extra", type=int_range(0, 10**9), default=0, help="paced events after it")
    parser.add_argument("--status", required=True)
    args = parser.parse_args()
    status = StatusFile(args.status)
    status.update(phase="starting", pid_started=time.time())
    meter = Meter(status, args.expect, args.extra)
    valid = asyncio.run(consume(args.bootstrap, args.topics.split(","), meter))
    status.update(valid=valid)


if __name__ == "__main__":
    main()
