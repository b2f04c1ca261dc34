"""Hostile input against a real worker: random bytes and crafted nasty messages mixed with valid events.

Whatever arrives, the worker stays up, every message is either applied or rejected to the DLQ with a
documented reason, and the valid events count in the KPI query exactly."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from fixtures import consume_all, converge, encode, event, isolated_env, poll, produce, running_worker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pure_pipeline import PurePipeline

from core.config import load_settings
from streams.contract.decode import REASONS

pytestmark = pytest.mark.integration

T0 = datetime(2025, 2, 10, 12, tzinfo=UTC)
MAX_BYTES = 4096
Message = tuple[str, bytes | None, bytes | None]


def valid_events() -> list[dict[str, Any]]:
    """20 customers signed up in December, 5 of them churn and 3 order in February 2025."""
    tag = f"h{time.monotonic_ns()}"
    signups = [event("customer.signed_up", datetime(2024, 12, 1, tzinfo=UTC) + timedelta(hours=i),
                     {"customer_id": f"c{i}", "segment": {"plan": "pro"}}, id_=f"{tag}-s{i}") for i in range(20)]
    orders = [event("order.placed", T0 + timedelta(hours=i),
                    {"customer_id": f"c{i}", "order_id": f"o{i}", "amount": 12.5, "currency": "EUR"},
                    id_=f"{tag}-o{i}") for i in range(10, 13)]
    churns = [event("customer.churned", T0 + timedelta(days=1, hours=i), {"customer_id": f"c{i}", "reason": "price"},
                    id_=f"{tag}-c{i}") for i in range(5)]
    return signups + orders + churns


def template(type_: str = "customer.signed_up", **data: Any) -> dict[str, Any]:
    return event(type_, T0, data or {"customer_id": "hostile"}, id_="hostile-1")


def raw(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev, separators=(",", ":")).encode()


def crafted() -> list[tuple[str, bytes | None]]:
    """Nasty messages that must all be rejected: (name, value)."""
    order = template("order.placed", customer_id="x", order_id="o", amount=0, currency="EUR")
    signup = template()
    return [
        ("empty", b""),
        ("whitespace", b"   \n\t"),
        ("tombstone", None),
        ("deep_array", b"[" * 100_000),
        ("deep_object", b'{"a":' * 100_000),
        ("deep_in_data", raw(signup).replace(b'"data":{', b'"data":' + b"[" * 50_000 + b"{")),
        ("deep_in_data_small", raw(signup).replace(b'"data":{', b'"data":' + b"[" * 1500 + b"{")),
        ("deep_object_small", b'{"a":' * 800),
        ("too_large", raw(template(customer_id="x", segment={"plan": "p" * 200} | {f"d{i}": "v" * 200
                                                                                  for i in range(50)}))),
        ("json_null", b"null"),
        ("json_array", b"[1,2,3]"),
        ("json_string", b'"customer.signed_up"'),
        ("json_number", b"1e400"),
        ("truncated", raw(signup)[:-5]),
        ("nan_amount", raw(order).replace(b'"amount":0', b'"amount":NaN')),
        ("infinity_amount", raw(order).replace(b'"amount":0', b'"amount":Infinity')),
        ("minus_infinity_amount", raw(order).replace(b'"amount":0', b'"amount":-Infinity')),
        ("amount_1e400", raw(order).replace(b'"amount":0', b'"amount":1e400')),
        ("score_1e400", raw(template("survey.nps", customer_id="x", score=0)).replace(b'"score":0', b'"score":1e400')),
        ("negative_amount", raw(order).replace(b'"amount":0', b'"amount":-1')),
        ("amount_string", raw(order).replace(b'"amount":0', b'"amount":"12.50"')),
        ("customer_id_number", raw(template(customer_id=123))),
        ("data_string", raw({**signup, "data": "customer"})),
        ("data_missing", raw({k: v for k, v in signup.items() if k != "data"})),
        ("specversion_number", raw({**signup, "specversion": 1.0})),
        ("specversion_2", raw({**signup, "specversion": "2.0"})),
        ("time_number", raw({**signup, "time": 1736000000})),
        ("time_without_offset", raw({**signup, "time": "2025-02-10T12:00:00"})),
        ("time_garbage", raw({**signup, "time": "yesterday"})),
        ("unknown_type", raw({**signup, "type": "customer.exploded"})),
        ("type_huge", raw({**signup, "type": "t" * 3000})),
        ("customer_id_huge", raw(template(customer_id="c" * 3000))),
        ("source_huge", raw({**signup, "source": "s" * 3500})),
        ("id_empty", raw({**signup, "id": ""})),
        ("bad_currency", raw({**order, "data": {**order["data"], "currency": "XXX"}})),
        ("currency_lowercase", raw({**order, "data": {**order["data"], "currency": "eur"}})),
        ("invalid_utf8_envelope", raw(signup).replace(b'"test"', b'"\xff\xfe"')),
        ("invalid_utf8_data", raw(template(customer_id="XX")).replace(b"XX", b"\xff\xfe")),
        ("lone_surrogate_escape", raw(template(customer_id="XX")).replace(b"XX", b"\\ud800")),
        ("nul_bytes", b"\x00" * 100),
        ("bom_prefixed", b"\xef\xbb\xbf" + b"[]"),
    ]


def random_bytes(rng: random.Random, count: int) -> list[bytes]:
    out = [rng.randbytes(rng.randint(0, 2000)) for _ in range(count)]
    # some that look like JSON at the start
    out += [b'{"specversion":"1.0",' + rng.randbytes(rng.randint(0, 300)) for _ in range(count // 10)]
    return out


def test_hostile_batch_is_rejected_valid_events_count_exactly(stack: str) -> None:
    started = time.monotonic()
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_MAX_MESSAGE_BYTES=str(MAX_BYTES))
    inputs = [env[f"RETENTION_TOPIC_{t}"] for t in ("LIFECYCLE", "SUPPORT", "FEEDBACK", "TEAM")]
    rng = random.Random(20250210)
    hostile: list[tuple[str, bytes | None]] = crafted()
    hostile += [(f"random-{i}", value) for i, value in enumerate(random_bytes(rng, 300))]
    valid = valid_events()
    # a duplicate key: valid whichever of the two values wins
    dup = b'{"specversion":"1.0","id":"dup-1","id":"dup-2","source":"test","type":"customer.signed_up",' \
          b'"time":"2024-12-20T00:00:00Z","data":{"customer_id":"dup","customer_id":"dup"}}'

    good: list[Message] = [(env["RETENTION_TOPIC_LIFECYCLE"], ev["data"]["customer_id"].encode(), encode(ev))
                           for ev in valid]
    good.insert(rng.randrange(len(good) + 1), (env["RETENTION_TOPIC_LIFECYCLE"], b"dup", dup))
    bad: list[Message] = [(rng.choice(inputs), name.encode(), value) for name, value in hostile]
    # interleave at random, keeping the valid events in order (a sign-up before its churn: allowed lateness)
    slots = sorted(rng.sample(range(len(good) + len(bad)), len(good)))
    messages: list[Message] = []
    goods, bads = iter(good), iter(bad)
    for i in range(len(good) + len(bad)):
        messages.append(next(goods) if i in slots else next(bads))
    published = len(messages)
    n_valid = len(valid) + 1

    with running_worker(env) as worker:
        produce(stack, cast(list[tuple[str, bytes | None, bytes]], messages))

        def counted() -> tuple[float, float]:
            return worker.metric_sum("retention_events_total"), worker.metric_sum("retention_events_rejected_total")

        try:
            poll(lambda: sum(counted()) >= published, 90, f"applied + rejected to reach {published}")
        finally:
            assert worker.proc is not None
            alive = worker.proc.poll() is None
            log_tail = worker.log.read_text(errors="replace")[-4000:]
            print(f"\nworker log {worker.log}; alive: {alive}; applied, rejected = {counted()} of {published}")
        assert alive, f"the worker died: {log_tail}"
        applied, rejected = counted()
        assert (applied, rejected) == (n_valid, published - n_valid), log_tail

        dlq = consume_all(stack, env["RETENTION_TOPIC_DLQ"], int(rejected), timeout=30)
        assert len(dlq) == rejected
        reasons = Counter(dict(r.headers)["reason"].decode() for r in dlq)
        assert set(reasons) <= set(REASONS), reasons
        by_name = {r.key.decode(): dict(r.headers)["reason"].decode() for r in dlq if r.key is not None}
        expected = {"too_large": "too_large", "tombstone": "not_json", "empty": "not_json",
                    "nan_amount": "not_json", "amount_1e400": "bad_value", "bad_currency": "bad_currency",
                    "unknown_type": "unknown_type", "time_without_offset": "bad_time",
                    "specversion_2": "bad_specversion", "customer_id_number": "wrong_type",
                    "data_missing": "missing_field", "json_null": "not_object"}
        assert {k: by_name.get(k) for k in expected} == expected
        for r in dlq:
            h = dict(r.headers)
            assert {"reason", "message", "source_topic", "source_partition", "source_offset"} <= set(h)
            assert h["source_topic"].decode() in inputs
        print(f"DLQ reasons: {dict(reasons)}")

        def q1() -> dict[str, Any]:
            answer = worker.kpis("2025-Q1")
            inputs_ = answer["inputs"]
            return {k: inputs_[k] for k in ("B", "E", "N", "L", "orders")} | {
                "lost_by_reason": answer["kpis"]["lost_by_reason"], "net_revenue": answer["kpis"]["net_revenue"]}

        converge(q1, {"B": 21, "E": 16, "N": 0, "L": 5, "orders": 3, "lost_by_reason": {"price": 5},
                      "net_revenue": 37.5}, "the valid events in the Q1 KPIs", timeout=60)
        assert worker.proc.poll() is None, "the worker died"
    print(f"test_hostile_input runtime: {time.monotonic() - started:.1f}s")


# -- hypothesis-generated messages -------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CUSTOMERS = [f"hc{i}" for i in range(8)]


@st.composite
def message(draw: st.DrawFn, n: int) -> tuple[bytes, bytes | None]:
    """A valid event, or one mangled in one of the ways publishers get it wrong; ``(key, value)``."""
    cid = draw(st.sampled_from(CUSTOMERS))
    kind = draw(st.sampled_from(["signup", "order", "churn", "nps", "ticket", "raw"]))
    if kind == "raw":
        return cid.encode(), draw(st.binary(max_size=300))
    t = T0 + timedelta(hours=draw(st.integers(-2000, 2000)))
    data: dict[str, Any] = {"customer_id": cid}
    if kind == "signup":
        type_, data["segment"] = "customer.signed_up", {"plan": draw(st.sampled_from(["pro", "free", "x"]))}
    elif kind == "order":
        type_ = "order.placed"
        data |= {"order_id": f"o{n}", "amount": draw(st.sampled_from([0, 12.5, 99.99])), "currency": "EUR"}
    elif kind == "churn":
        type_, data["reason"] = "customer.churned", draw(st.sampled_from(["price", "service"]))
    elif kind == "nps":
        type_, data["score"] = "survey.nps", draw(st.integers(0, 10))
    else:
        type_ = "ticket.opened"
        data |= {"ticket_id": f"t{n}", "kind": "complaint", "category": "billing"}
    ev = event(type_, t, data, id_=f"hyp-{n}")
    mangle = draw(st.sampled_from(["none", "none", "drop", "retype", "data", "huge", "cut", "utf8"]))
    if mangle == "drop":
        target = draw(st.sampled_from([*ev, *[f"data.{k}" for k in data]]))
        (ev["data"] if target.startswith("data.") else ev).pop(target.removeprefix("data."), None)
    elif mangle == "retype":
        target = draw(st.sampled_from(["specversion", "id", "source", "type", "time"]))
        ev[target] = draw(JSON)
    elif mangle == "data":
        ev["data"] = {**data, **draw(st.dictionaries(st.sampled_from([*data, "extra"]), JSON, max_size=3))}
    elif mangle == "huge":
        ev["source"] = "s" * draw(st.integers(200, 6000))
    value = json.dumps(ev, separators=(",", ":")).encode()
    if mangle == "cut":
        value = value[: draw(st.integers(0, len(value) - 1))]
    elif mangle == "utf8":
        value = value.replace(cid.encode(), cid.encode() + b"\xff", 1)
    return cid.encode(), value


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.integers(60, 150).flatmap(lambda n: st.tuples(*(message(i) for i in range(n)))))
def test_hypothesis_messages_count_or_dead_letter(stack: str, batch: tuple[tuple[bytes, bytes | None], ...]) -> None:
    """Every generated message is applied or dead-lettered (never lost, never both); the KPIs equal the
    pure pipeline fed the same bytes; the worker never dies."""
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALLOWED_LATENESS="3650d", RETENTION_HISTORY="3650d",
                       RETENTION_MAX_MESSAGE_BYTES=str(MAX_BYTES))
    pure = PurePipeline(load_settings(env=env).settings)
    valid, rejected = pure.send_bytes(*(value for _, value in batch), max_bytes=MAX_BYTES)
    topic = env["RETENTION_TOPIC_LIFECYCLE"]  # one topic: each key's messages keep their order
    with running_worker(env) as worker:
        produce(stack, [(topic, key, cast(bytes, value)) for key, value in batch])
        converge(lambda: (worker.metric_sum("retention_events_total"),
                          worker.metric_sum("retention_events_rejected_total")),
                 (float(valid), float(rejected)), "applied and dead-lettered counts", timeout=60)
        for period in ("2025-Q1", "2024"):
            want = json.loads(json.dumps(pure.answer(period)))
            want["timezone"] = pure.settings.timezone
            def answer(period: str = period) -> dict[str, Any]:
                return {k: v for k, v in worker.kpis(period).items() if k != "worker"}

            converge(answer, want, f"KPIs of {period}", timeout=30)
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker died"
