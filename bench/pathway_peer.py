"""The Pathway peer: the Quix peer's work (bench/quix_peer.py) as a Pathway 0.33 program.

Run by ``bench.run`` as a child process (``python -m bench.pathway_peer …``); it reports through a
status file. Configuration: Pathway's defaults — one engine thread, **no persistence** (state lives
in the engine's memory only and is not durable: nothing on disk, a restart has lost all state), a
minibatch committed every 1,500 ms per Kafka reader (``autocommit_duration_ms``: an event waits for
its minibatch, which bounds the latency from below). Pathway is an incremental dataflow over tables,
not a per-event processor, so the same work is written the Pathway way:

1. ``pw.io.kafka.read`` per input topic (a reader takes one topic), the JSON parsed by the connector,
   the four tables concatenated; owner (customer or ``rep:<id>``) and bucket from bench/peer_logic.py;
2. dedupe by event id: a ``groupby`` on the id keeping the earliest row — an index of every id in the
   engine instead of the id list in the customer's record (same result: an id has one customer);
3. per customer: a ``stateful_many`` reducer applies the Quix peer's updates (bench/peer_logic.py) to
   the customer's record, a minibatch's events in event-time order (Pathway hands them over
   unordered; Quix and Bytewax apply them in arrival order);
4. per (event-time day, type) bucket: ``groupby`` + ``count`` of the deduplicated events;
5. an event is done once both outputs have closed its minibatch (bench/minibatch.py); after the
   backlog, latency = now - the input's Kafka timestamp. The clock starts with the engine, so it
   includes the wait for the first minibatch.

Differences: a duplicate is dropped at step 2, not counted in a ``duplicate`` bucket (the event file
has none). Pathway keeps the rows it has read in its operators' indexes, so its memory grows by a
few KiB per event, not per customer.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable
from typing import Any

import pathway as pw

from bench.meter import Meter, child_meter, child_parser
from bench.minibatch import Frontier
from bench.peer_logic import Record, apply_event, bucket, new_record, owner


class Event(pw.Schema):
    event_id: str  # the event's ``id`` (a column named ``id`` would clash with Pathway's row id)
    type: str
    time: str
    data: pw.Json


@pw.udf(deterministic=True)  # so Pathway does not keep every result (its default for a UDF)
def _owner(data: pw.Json) -> str:
    return owner(data.as_dict())


@pw.udf(deterministic=True)
def _bucket(kind: str, when: str) -> str:
    return bucket(kind, when)


def _topic(settings: dict[str, str], topic: str) -> pw.Table[Any]:
    table: pw.Table[Any] = pw.io.kafka.read(settings, topic=topic, format="json", schema=Event, with_metadata=True,
                                            json_field_paths={"event_id": "/id"}, name=topic)  # fmt: skip
    return table


def read(bootstrap: str, topics: list[str], group: str) -> pw.Table[Any]:
    """The four topics as one table: the event, its owner, its bucket and its Kafka timestamp."""
    settings = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    events = pw.Table.concat_reindex(*(_topic(settings, topic) for topic in topics))
    table: pw.Table[Any] = events.select(
        pw.this.event_id, pw.this.type, pw.this.time, pw.this.data,
        owner=_owner(pw.this.data),
        bucket=_bucket(pw.this.type, pw.this.time),
        timestamp=pw.this._metadata["timestamp_millis"].as_int(),
    )  # fmt: skip
    return table


@pw.reducers.stateful_many  # type: ignore[type-var]  # its Value alias omits PyObjectWrapper, the engine takes it
def customer_state(state: pw.PyObjectWrapper[Record] | None, rows: list[tuple[list[Any], int]]
                   ) -> pw.PyObjectWrapper[Record]:  # fmt: skip
    """A customer's record after one minibatch of its (deduplicated, insert-only) events."""
    wrapper = state if state is not None else pw.wrap_py_object(new_record())
    for (kind, when, data), diff in sorted(rows, key=lambda row: row[0][1]):
        if diff > 0:
            apply_event(wrapper.value, kind, when, data.as_dict())
    return wrapper


def _count() -> pw.ColumnExpression:
    expression: pw.ColumnExpression = pw.reducers.count()  # type: ignore[no-untyped-call]  # unannotated
    return expression


def build(events: pw.Table[Any]) -> tuple[pw.Table[Any], pw.Table[Any]]:
    """The per-customer records and the per-bucket counts of the deduplicated events."""
    earliest = pw.reducers.earliest
    unique = events.groupby(pw.this.event_id).reduce(
        owner=earliest(pw.this.owner), type=earliest(pw.this.type), time=earliest(pw.this.time),
        data=earliest(pw.this.data), bucket=earliest(pw.this.bucket),
    )  # fmt: skip
    # ``events`` changes with every minibatch that touches a customer, so each one shows as an update.
    customers = unique.groupby(pw.this.owner).reduce(
        pw.this.owner, events=_count(), record=customer_state(pw.this.type, pw.this.time, pw.this.data)
    )
    buckets = unique.groupby(pw.this.bucket).reduce(pw.this.bucket, count=_count())
    return customers, buckets


class Progress:
    """Counts each event as done once every output has closed its minibatch; stops the run at the target."""

    def __init__(self, meter: Meter, outputs: Iterable[str]) -> None:
        self.meter, self.frontier, self.stopping = meter, Frontier(outputs), False

    def seen(self, key: pw.Pointer[Any], row: dict[str, Any], time: int, is_addition: bool) -> None:
        """``on_change`` of the events: one row per input event, with its Kafka timestamp."""
        if is_addition and self.frontier.add(time, row["timestamp"]):
            self._done([row["timestamp"]])

    def closer(self, output: str) -> Callable[..., None]:
        """``on_time_end`` of ``output``."""

        def on_time_end(time: int) -> None:
            self._done(self.frontier.close(output, time))

        return on_time_end

    def _done(self, timestamps: list[int]) -> None:
        for timestamp in timestamps:
            if self.meter.observe(timestamp) and not self.stopping:
                self.stopping = True
                os.kill(os.getpid(), signal.SIGINT)  # the engine unwinds; pw.run raises KeyboardInterrupt


def watch(events: pw.Table[Any], outputs: dict[str, pw.Table[Any]], meter: Meter) -> None:
    """Subscribe to the events (one row each) and to every output (for the end of each minibatch)."""
    progress = Progress(meter, outputs)
    pw.io.subscribe(events.select(pw.this.timestamp), progress.seen, name="events")
    for name, table in outputs.items():
        pw.io.subscribe(table, _ignore, on_time_end=progress.closer(name), name=name)


def _ignore(key: pw.Pointer[Any], row: dict[str, Any], time: int, is_addition: bool) -> None:
    """The outputs' rows are not read: only the end of each minibatch matters."""


def main() -> None:
    parser = child_parser("bench.pathway_peer", __doc__)
    parser.add_argument("--group", required=True, help="the Kafka consumer group")
    args = parser.parse_args()
    meter = child_meter(args)
    events = read(args.bootstrap, args.topics.split(","), args.group)
    customers, buckets = build(events)
    watch(events, {"customers": customers, "buckets": buckets}, meter)  # an event updates both
    # The stop at the target is a SIGINT to itself, which a shell ignores in background jobs: take it back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    meter.begin()
    try:
        pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    except KeyboardInterrupt:
        if not meter.finished:
            raise


if __name__ == "__main__":
    main()
