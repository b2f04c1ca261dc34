"""The peer: a Quix Streams application doing per-customer state and per-bucket counting.

Run by ``bench.run`` as a child process (``python -m bench.quix_peer …``); it reports through a
status file. Per event, in Quix's default configuration (RocksDB state, changelog topics on,
at-least-once, 5 s commit interval):

1. decode the JSON value (Quix's ``json`` deserializer, orjson);
2. re-key by customer (``rep:<id>`` for rep events) into one internal topic — a ``group_by`` over
   the four input topics. Quix's ``group_by`` works on one dataframe (one input topic) and is
   ``to_topic(repartition topic, key=…)`` plus a dataframe on that topic, so the four inputs do
   exactly that into one shared topic. The inputs are already keyed by customer, but the monitor
   cannot rely on it and re-keys too, so the peer pays for the same hop;
3. per customer (stateful ``apply``): dedupe by event id against the ids kept in the customer's
   state, then update its lifecycle status, sign-up/churn time, order count, net revenue, last order
   time, open tickets and per-type counts (bench/peer_logic.py, shared with the Bytewax and Pathway
   peers); one state write per event (RocksDB + changelog);
4. ``group_by`` the (event-time day, type) bucket — a second repartition topic — and count per
   bucket in state (the monitor's per-day event-time fact index, the Quix way: state is per key);
5. count the event as done; after the backlog, sample latency = now - the input's Kafka timestamp
   (``to_topic`` and ``group_by`` carry the timestamp through both hops).

It does less than the monitor (no schema validation, no currencies, no KPI facts or quantiles), so
"monitor ≥ 1.5 x peer" is a conservative comparison.
"""

from __future__ import annotations

from typing import Any

from quixstreams import Application, State
from quixstreams.models.topics import TopicConfig

from bench.cli import int_range
from bench.meter import Meter, child_meter, child_parser
from bench.peer_logic import DUPLICATE, Record, new_record, owner, update_customer


def apply_customer(event: dict[str, Any], state: State[str, Any]) -> dict[str, str]:
    """Dedupe and update one customer's state (bench/peer_logic.py); returns the (day, type) bucket to count."""
    record: Record | None = state.get("customer")
    if record is None:
        record = new_record()
    counted = update_customer(record, event)
    if counted != DUPLICATE:
        state.set("customer", record)
    return {"bucket": counted}


def count_bucket(value: dict[str, str], state: State[str, int]) -> int:
    count: int = state.get("count", 0) + 1
    state.set("count", count)
    return count


def build(app: Application, topics: list[str], group: str, partitions: int, meter: Meter) -> None:
    """Wire the dataframes; ``meter`` starts at the first input message and counts at the end."""
    by_customer = app.topic(
        f"{group}--by-customer", key_serializer="str", key_deserializer="str",
        config=TopicConfig(num_partitions=partitions, replication_factor=1),
    )  # fmt: skip

    def first_seen(value: dict[str, Any]) -> None:
        if meter.started is None:
            meter.begin()

    for name in topics:
        source = app.dataframe(app.topic(name, key_deserializer="bytes", value_deserializer="json"))
        source.update(first_seen).to_topic(by_customer, key=lambda event: owner(event["data"]))

    customers = app.dataframe(by_customer).apply(apply_customer, stateful=True)
    buckets = customers.group_by(lambda v: v["bucket"], name="bucket", key_serializer="str", key_deserializer="str")
    counted = buckets.apply(count_bucket, stateful=True)

    def done(value: int, key: Any, timestamp: int, headers: Any) -> None:
        if meter.observe(timestamp):
            app.stop()

    counted.update(done, metadata=True)


def main() -> None:
    parser = child_parser("bench.quix_peer", __doc__)
    parser.add_argument("--group", required=True, help="consumer group; prefix of the peer's own topics")
    parser.add_argument("--partitions", type=int_range(1, 1024), required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    meter = child_meter(args)
    app = Application(broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state_dir, loglevel="WARNING")  # fmt: skip
    build(app, args.topics.split(","), args.group, args.partitions, meter)
    app.run()


if __name__ == "__main__":
    main()
