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
   time, open tickets and per-type counts; one state write per event (RocksDB + changelog);
4. ``group_by`` the (event-time day, type) bucket — a second repartition topic — and count per
   bucket in state (the monitor's per-day event-time fact index, the Quix way: state is per key);
5. count the event as done; after the backlog, sample latency = now - the input's Kafka timestamp
   (``to_topic`` and ``group_by`` carry the timestamp through both hops).

It does less than the monitor (no schema validation, no currencies, no KPI facts or quantiles), so
"monitor ≥ 1.5 x peer" is a conservative comparison.
"""

from __future__ import annotations

import time
from typing import Any

from quixstreams import Application, State
from quixstreams.models.topics import TopicConfig

from bench.cli import OneLineParser, int_range
from bench.meter import Meter
from bench.status import StatusFile


def owner(event: dict[str, Any]) -> str:
    """The re-key: the customer, or ``rep:<id>`` like the monitor's ``partition_key``."""
    data = event["data"]
    customer: str | None = data.get("customer_id")
    return customer if customer else "rep:" + data["rep_id"]


def apply_customer(event: dict[str, Any], state: State[str, Any]) -> dict[str, str]:
    """Dedupe and update one customer's state; returns the (day, type) bucket to count."""
    record: dict[str, Any] | None = state.get("customer")
    if record is None:
        record = {"status": None, "since": None, "reason": None, "orders": 0, "revenue": 0.0, "last_order": None,
                  "open_tickets": 0, "counts": {}, "ids": []}  # fmt: skip
    event_id, kind, when = event["id"], event["type"], event["time"]
    if event_id in record["ids"]:
        return {"bucket": "duplicate"}
    record["ids"].append(event_id)
    data = event["data"]
    if kind in ("customer.signed_up", "customer.reactivated"):
        record["status"], record["since"] = "active", when
    elif kind == "customer.churned":
        record["status"], record["since"], record["reason"] = "lost", when, data.get("reason")
    elif kind == "order.placed":
        record["orders"] += 1
        record["revenue"] += data["amount"]
        # RFC 3339 times in UTC with a Z compare correctly as strings (the simulator writes only those).
        record["last_order"] = max(record["last_order"] or when, when)
    elif kind in ("order.refunded", "order.returned"):
        record["revenue"] -= data.get("amount") or 0.0  # a return may carry no amount
    elif kind == "ticket.opened":
        record["open_tickets"] += 1
    elif kind == "ticket.resolved":
        record["open_tickets"] = max(0, record["open_tickets"] - 1)
    counts = record["counts"]
    counts[kind] = counts.get(kind, 0) + 1
    state.set("customer", record)
    return {"bucket": f"{when[:10]}|{kind}"}


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
        source.update(first_seen).to_topic(by_customer, key=owner)

    customers = app.dataframe(by_customer).apply(apply_customer, stateful=True)
    buckets = customers.group_by(lambda v: v["bucket"], name="bucket", key_serializer="str", key_deserializer="str")
    counted = buckets.apply(count_bucket, stateful=True)

    def done(value: int, key: Any, timestamp: int, headers: Any) -> None:
        if meter.observe(timestamp):
            app.stop()

    counted.update(done, metadata=True)


def main() -> None:
    parser = OneLineParser(prog="bench.quix_peer", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--group", required=True, help="consumer group; prefix of the peer's own topics")
    parser.add_argument("--partitions", type=int_range(1, 1024), required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--expect", type=int_range(1, 10**9), required=True, help="backlog size")
    parser.add_argument("--extra", type=int_range(0, 10**9), default=0, help="paced events after it")
    parser.add_argument("--status", required=True)
    args = parser.parse_args()
    status = StatusFile(args.status)
    status.update(phase="starting", pid_started=time.time())
    meter = Meter(status, args.expect, args.extra)
    app = Application(broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state_dir, loglevel="WARNING")  # fmt: skip
    build(app, args.topics.split(","), args.group, args.partitions, meter)
    app.run()


if __name__ == "__main__":
    main()
