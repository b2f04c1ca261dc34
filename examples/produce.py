"""Publish a few events to retention-monitor with aiokafka: a sign-up, an order and an NPS answer.

    python examples/produce.py --bootstrap 127.0.0.1:9092            # CloudEvents in structured mode
    python examples/produce.py --bootstrap 127.0.0.1:9092 --binary   # the same in binary mode (ce_* headers)

Copy it into a publishing system: it needs only aiokafka (``pip install aiokafka``). Each event goes to
the topic of its family (docs/contract/events.md, "Topics"), keyed by the customer id so that one
customer's events stay in order, and is awaited until Kafka acknowledged it: an event is published once
``send_and_wait`` returned. Ids are unique per event; a retry must reuse the id, then the monitor counts
the event once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

FAMILY = {"customer": "lifecycle", "order": "lifecycle", "ticket": "support", "survey": "feedback",
          "feedback": "feedback", "rep": "team"}


def event(type_: str, data: dict[str, Any], source: str = "example-producer") -> dict[str, Any]:
    """A CloudEvents 1.0 envelope; ``time`` is when it happened (now here), with an offset."""
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": source, "type": type_,
            "time": datetime.now(UTC).isoformat(), "data": data}


def binary(ev: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The binary-mode form: the attributes as ce_* headers, the data as the value."""
    headers = [(f"ce_{name}", str(ev[name]).encode()) for name in ("specversion", "id", "source", "type", "time")]
    return json.dumps(ev["data"]).encode(), [*headers, ("content-type", b"application/json")]


async def publish(bootstrap: str, prefix: str, events: list[dict[str, Any]], binary_mode: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for ev in events:
            topic = f"{prefix}.{FAMILY[ev['type'].split('.')[0]]}"
            key = ev["data"].get("customer_id") or f"rep:{ev['data']['rep_id']}"
            value, headers = binary(ev) if binary_mode else (json.dumps(ev).encode(), [])
            await producer.send_and_wait(topic, value, key=key.encode(), headers=headers)
            print(f"{topic}: {ev['type']} {ev['id']}")
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--prefix", default="retention", help="topic prefix: PREFIX.lifecycle, PREFIX.feedback …")
    parser.add_argument("--customer", default=f"example-{uuid.uuid4().hex[:8]}", help="customer id")
    parser.add_argument("--binary", action="store_true", help="CloudEvents binary mode (ce_* headers)")
    args = parser.parse_args()
    customer = args.customer
    events = [
        event("customer.signed_up", {"customer_id": customer, "segment": {"plan": "pro", "region": "eu"}}),
        event("order.placed", {"customer_id": customer, "order_id": f"{customer}-o1", "amount": 49.9,
                               "currency": "EUR"}),
        event("survey.nps", {"customer_id": customer, "score": 9}),
    ]
    asyncio.run(publish(args.bootstrap, args.prefix, events, args.binary))


if __name__ == "__main__":
    main()
