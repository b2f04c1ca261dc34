"""The ceiling: a raw aiokafka ``getmany`` loop that only decodes and validates each value.

Run by ``bench.run`` as a child process (``python -m bench.ceiling …``); it reports through a status
file. Exactly bench/throughput.py's ceiling: ``streams.contract.decode.decode`` of every value, nothing else;
after the backlog it keeps reading the paced slice and samples latency at decode.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from bench.meter import Meter, child_meter, child_parser
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
    parser = child_parser("bench.ceiling", __doc__)
    args = parser.parse_args()
    meter = child_meter(args)
    valid = asyncio.run(consume(args.bootstrap, args.topics.split(","), meter))
    meter.status.update(valid=valid)


if __name__ == "__main__":
    main()
