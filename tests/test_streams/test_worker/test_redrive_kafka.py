"""Dead letters redriven through the real broker and a worker: the KPIs exact, nothing counted twice.

The story an operator lives: a shop starts selling in SEK before the monitor has a rate for it, so its
SEK orders are dead-lettered (one was even re-sent by the shop in EUR, with the same event id). The rate
is added and the workers restarted; ``dlq redrive`` sends the same bytes again and they pass. The
re-sent order counts once, a dead letter nothing can fix stays where it is, a second redrive sends nothing,
and the dead-letter topic still holds every dead letter.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fixtures import ROOT, WorkerProcess, consume_all, converge, encode, event, isolated_env, produce

pytestmark = pytest.mark.integration

RATES = {"USD": 0.92, "GBP": 1.17, "CHF": 1.06}  # the built-in table: no SEK
SEK = 0.087
TRACE = ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


def _order(n: int, customer: str, amount: float, currency: str, id_: str | None = None) -> dict[str, Any]:
    return event("order.placed", f"2025-02-{n:02d}T10:00:00Z",
                 {"customer_id": customer, "order_id": f"o{n}", "amount": amount, "currency": currency}, id_=id_)


O3 = _order(3, "c1", 100.00, "SEK")  # dead-lettered, then redriven
EVENTS = [
    *(event("customer.signed_up", "2025-01-05T10:00:00Z", {"customer_id": f"c{i}"}) for i in range(3)),
    _order(1, "c0", 10.00, "EUR"),
    _order(2, "c1", 20.50, "EUR"),
    O3,
    _order(4, "c2", 250.00, "SEK"),  # dead-lettered, then redriven
    _order(5, "c2", 300.00, "SEK", id_="evt-o5"),  # dead-lettered, redriven: a duplicate by then
    _order(5, "c2", 30.00, "EUR", id_="evt-o5"),  # the shop's own fix of o5, accepted at once
    event("order.placed", "2025-02-06T10:00:00Z", {"customer_id": "c0", "amount": 5.0}),  # no order_id: stays
]
BEFORE = Decimal("60.50")  # o1 + o2 + o5 in EUR
AFTER = BEFORE + Decimal("8.70") + Decimal("21.75")  # + o3 and o4 at the SEK rate; o5 not twice


def _publish(bootstrap: str, topic: str) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:  # every event with the producer's trace header, which must survive a redrive
            sent = [await producer.send(topic, encode(ev), key=ev["data"]["customer_id"].encode(), headers=[TRACE])
                    for ev in EVENTS]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(run())


def dlq(env: dict[str, str], *args: str, code: int = 0, table: bool = False) -> Any:
    """The command's JSON answer (or, with ``table``, what it prints for people)."""
    command = [sys.executable, "-m", "retention_monitor.cli", "dlq", *args, *([] if table else ["--json"])]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False,
                            env={**os.environ, **env, "COLUMNS": "200"})
    assert result.returncode == code, result.stderr
    return result.stdout if table else json.loads(result.stdout)


def _revenue(worker: WorkerProcess) -> tuple[Decimal, Decimal]:
    answer = worker.kpis("2025-Q1")
    return Decimal(str(answer["kpis"]["net_revenue"])), Decimal(str(answer["inputs"]["order_amount"]))


def test_redriven_dead_letters_count_once_and_a_second_redrive_sends_nothing(stack: str) -> None:
    env = isolated_env(RETENTION_CLOCK="event")
    worker = WorkerProcess(env).start()
    try:
        _publish(stack, env["RETENTION_TOPIC_LIFECYCLE"])
        converge(lambda: worker.metric_sum("retention_events_total")
                 + worker.metric_sum("retention_events_rejected_total"), float(len(EVENTS)), "every event handled")
        converge(lambda: _revenue(worker), (BEFORE, BEFORE), "revenue without the SEK orders")
        listed = dlq(env, "list")
        assert (listed["matched"], listed["counts"]) == (4, {"bad_currency": 3, "missing_field": 1})
        _check_filters(env)
        _check_show(env, listed["letters"][0])
        # with the old settings nothing would pass yet: a dry run says so (exit 1) and sends nothing
        dry = dlq(env, "redrive", "--dry-run", code=1)
        assert (dry["redriven"], dry["failing"]) == (0, {"bad_currency": 3, "missing_field": 1})
        worker.stop()
        env["RETENTION_CURRENCY_RATES"] = json.dumps({**RATES, "SEK": SEK})  # the fix: a rate for SEK
        worker = WorkerProcess(env).start()
        first = dlq(env, "redrive", "--limit", "2")  # a part, then the rest
        assert (first["redriven"], first["stopped_at_limit"]) == (2, True)
        rest = dlq(env, "redrive")
        assert (rest["matched"], rest["redriven"], rest["already"], rest["failing"], rest["stopped_at_limit"]) == (
            4, 1, 2, {"missing_field": 1}, False)
        converge(lambda: _revenue(worker), (AFTER, AFTER), "revenue with the SEK orders, o5 once")
        # o5's SEK copy is a duplicate: it writes no changelog entry, so the revenue may show before it is counted
        converge(lambda: worker.metric_sum("retention_events_duplicate_total"), 1.0, "o5's SEK copy a duplicate")
        dry_table = dlq(env, "redrive", "--dry-run", "--reason", "bad_currency", table=True)
        assert re.search(r"would be redriven\s*│\s*0 .*skipped: redriven before\s*│\s*3 ", dry_table, re.S), dry_table
        second = dlq(env, "redrive")
        assert (second["redriven"], second["already"], second["failing"]) == (0, 3, {"missing_field": 1})
        assert dlq(env, "list")["matched"] == 4  # nothing removed, nothing dead-lettered again
        _check_republished(stack, env)
        # a redrive that died between a send and its marker sends that message again: counted once
        produce(stack, [(env["RETENTION_TOPIC_LIFECYCLE"], b"c1", encode(O3))])
        converge(lambda: worker.metric_sum("retention_events_duplicate_total"), 2.0, "the re-sent o3 seen")
        assert _revenue(worker) == (AFTER, AFTER)
    finally:
        worker.stop()


def _check_filters(env: dict[str, str]) -> None:
    assert dlq(env, "list", "--reason", "missing_field")["matched"] == 1
    assert dlq(env, "list", "--type", "order.placed", "--reason", "bad_currency", "--limit", "2")["shown"] == 2
    assert dlq(env, "list", "--type", "customer.signed_up")["matched"] == 0
    assert dlq(env, "list", "--since", "1h")["matched"] == 4
    assert dlq(env, "list", "--until", "1h")["matched"] == 0
    printed = dlq(env, "list", "--reason", "missing_field", table=True)
    assert "1 matching, showing 1" in printed
    assert "data: Object missing required field `order_id`" in printed
    assert "by reason: missing_field 1" in printed


def _check_show(env: dict[str, str], listed: dict[str, Any]) -> None:
    [shown] = dlq(env, "show", listed["position"])["letters"]
    original = next(ev for ev in EVENTS if ev["id"] == listed["id"])
    assert base64.b64decode(shown["value_base64"]) == encode(original)
    assert shown["headers"] == {TRACE[0]: TRACE[1].decode()}
    assert (shown["reason"], shown["source_topic"]) == (listed["reason"], env["RETENTION_TOPIC_LIFECYCLE"])
    assert [x["position"] for x in dlq(env, "show", "--id", "evt-o5")["letters"]] == [
        x["position"] for x in dlq(env, "list", "--reason", "bad_currency")["letters"] if x["id"] == "evt-o5"]


def _check_republished(stack: str, env: dict[str, str]) -> None:
    """The three redriven messages are on the input topic once each: the same bytes, key and own header."""
    records = consume_all(stack, env["RETENTION_TOPIC_LIFECYCLE"], len(EVENTS) + 3)
    redriven = [r for r in records if "retention-redrive" in dict(r.headers)]
    assert (len(records), len(redriven)) == (len(EVENTS) + 3, 3)
    sek = [ev for ev in EVENTS if ev["data"].get("currency") == "SEK"]
    assert sorted(r.value for r in redriven) == sorted(encode(ev) for ev in sek)
    for r in redriven:
        headers = dict(r.headers)
        assert headers[TRACE[0]] == TRACE[1]
        assert r.key == json.loads(r.value)["data"]["customer_id"].encode()
