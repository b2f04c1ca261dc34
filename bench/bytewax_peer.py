"""The Bytewax peer: the Quix peer's work (bench/quix_peer.py) as a Bytewax 0.21 dataflow.

Run by ``bench.run`` as a child process (``python -m bench.bytewax_peer …``); it reports through a
status file. Configuration: Bytewax's defaults, as ``python -m bytewax.run`` starts a flow — one
worker in one process, 10 s epochs and **no recovery**: state lives in memory only and is not
durable. Nothing is written to disk or Kafka (no changelog, no state files, no committed offsets:
Bytewax's Kafka source assigns the partitions itself and keeps its offsets only in recovery
snapshots), so a restart would start from the beginning of the topics with empty state. This is
less work than the Quix peer's RocksDB + changelog, so "monitor ≥ 1.5 x Bytewax" is the harder
comparison. What Bytewax does anyway: at the end of every epoch it deep-copies the state of every
key touched in it (its snapshot), recovery or not. Per event:

1. Bytewax's ``KafkaSource`` over the four input topics (one librdkafka consumer per partition, from
   the beginning, batches of up to 1,000); decode the JSON value (stdlib ``json``);
2. ``key_on`` the customer (``rep:<id>`` for rep events): Bytewax routes items by key between its
   workers inside the dataflow — in memory with one worker, not through a Kafka topic like Quix;
3. ``stateful_map`` per customer: dedupe by event id against the ids in the customer's record, then
   the same updates as the Quix peer (bench/peer_logic.py); the record is the key's state;
4. ``key_on`` the (event-time day, type) bucket and count per bucket in a second ``stateful_map``;
5. count the event as done in the sink; after the backlog, latency = now - the input's Kafka
   timestamp, carried along with the event.

The source ends once the meter has every event, which ends the dataflow (Bytewax stops when all its
inputs have ended).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax._bytewax import cli_main
from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from bench.meter import Meter, child_meter, child_parser
from bench.peer_logic import Record, new_record, owner, update_customer

Message = KafkaSourceMessage[bytes | None, bytes | None] | KafkaError[bytes | None, bytes | None]
Timed = tuple[dict[str, Any], int]  # a decoded event and its Kafka timestamp (ms)
EPOCH = timedelta(seconds=10)  # `python -m bytewax.run`'s default without recovery


class _UntilDone(StatefulSourcePartition[Message, int | None]):
    """One Kafka partition of the source that starts the meter and ends once the meter is done."""

    def __init__(self, inner: StatefulSourcePartition[Message, int | None], meter: Meter) -> None:
        self.inner, self.meter = inner, meter

    def next_batch(self) -> Iterable[Message]:
        if self.meter.finished:
            raise StopIteration
        batch = list(self.inner.next_batch())
        if batch and self.meter.started is None:
            self.meter.begin()
        return batch

    def next_awake(self) -> datetime | None:
        return self.inner.next_awake()

    def snapshot(self) -> int | None:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class MeteredKafkaSource(FixedPartitionedSource[Message, int | None]):
    """Bytewax's ``KafkaSource`` with its defaults (from the beginning, raise on errors), ending with the meter."""

    def __init__(self, brokers: list[str], topics: list[str], meter: Meter) -> None:
        self.kafka, self.meter = KafkaSource(brokers, topics), meter

    def list_parts(self) -> list[str]:
        return self.kafka.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _UntilDone:
        return _UntilDone(self.kafka.build_part(step_id, for_part, resume_state), self.meter)


class _Done(StatelessSinkPartition[tuple[str, int]]):
    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def write_batch(self, items: list[tuple[str, int]]) -> None:
        for _bucket, timestamp in items:
            self.meter.observe(timestamp)


class MeterSink(DynamicSink[tuple[str, int]]):
    """Counts each (bucket, Kafka timestamp) item as one event done."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Done:
        return _Done(self.meter)


def decode(message: Message) -> Timed:
    """The event and its Kafka timestamp (the source raises on errors, so every item is a message)."""
    assert isinstance(message, KafkaSourceMessage)
    assert message.value is not None
    assert message.timestamp is not None
    return json.loads(message.value), message.timestamp[1]


def customer_step(record: Record | None, item: Timed) -> tuple[Record, tuple[str, int]]:
    """``stateful_map`` per customer: the shared dedupe + update; emits (bucket, Kafka timestamp)."""
    event, timestamp = item
    if record is None:
        record = new_record()
    return record, (update_customer(record, event), timestamp)


def count_step(count: int | None, item: tuple[str, int]) -> tuple[int, int]:
    """``stateful_map`` per bucket: one more event in it; passes the Kafka timestamp on."""
    return (count or 0) + 1, item[1]


def build(brokers: list[str], topics: list[str], meter: Meter) -> Dataflow:
    flow = Dataflow("bench_bytewax_peer")
    messages = op.input("kafka", flow, MeteredKafkaSource(brokers, topics, meter))
    events = op.map("decode", messages, decode)
    by_customer = op.key_on("by_customer", events, lambda item: owner(item[0]["data"]))
    buckets = op.key_rm("customer_done", op.stateful_map("customer", by_customer, customer_step))
    by_bucket = op.key_on("by_bucket", buckets, lambda item: item[0])
    op.output("done", op.stateful_map("count", by_bucket, count_step), MeterSink(meter))
    return flow


def main() -> None:
    parser = child_parser("bench.bytewax_peer", __doc__)
    args = parser.parse_args()
    meter = child_meter(args)
    flow = build(args.bootstrap.split(","), args.topics.split(","), meter)
    cli_main(flow, workers_per_process=1, epoch_interval=EPOCH)  # type: ignore[no-untyped-call]  # compiled core


if __name__ == "__main__":
    main()
