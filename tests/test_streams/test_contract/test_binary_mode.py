"""CloudEvents binary mode (attributes in ce_* headers, the data as the value): the same event as in
structured mode, kept in its structured form, and every way it can be wrong named by a reason."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fixtures import ROOT
from hypothesis import given
from hypothesis import strategies as st

from core.settings import Settings
from streams.contract.decode import Event, Rejection, decode, decode_with_headers
from streams.memory import MemoryLog, Message, Partition
from streams.route.dead_letters import ORIGINAL_HEADER, DeadLetters
from streams.route.records import Recorder
from streams.route.stage import RouteStage
from streams.wire import decode_batch

SETTINGS = Settings()
CURRENCIES = frozenset(SETTINGS.rates)
EXAMPLES = [json.loads(line) for line in (ROOT / "examples" / "events.jsonl").read_text().splitlines()]
Headers = list[tuple[str, bytes]]


def binary(ev: dict[str, Any], **extra: bytes) -> tuple[Headers, bytes]:
    headers = [(f"ce_{name}", str(ev[name]).encode()) for name in ("specversion", "id", "source", "type", "time")]
    return [*headers, *extra.items()], json.dumps(ev["data"]).encode()


def structured(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev).encode()


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
offsets = st.sampled_from(["Z", "+01:00", "-05:30", ".123456Z", ".5+02:00"])


@given(st.sampled_from(EXAMPLES), texts, texts, offsets, st.booleans())
def test_binary_and_structured_forms_decode_to_the_same_event(
        example: dict[str, Any], id_: str, source: str, offset: str, content_type: bool) -> None:
    ev = {**example, "id": id_, "source": source, "time": example["time"][:19] + offset}
    expected = decode(structured(ev), CURRENCIES)
    assert isinstance(expected, Event)
    headers, value = binary(ev)
    if content_type:
        headers.append(("content-type", b"application/json; charset=utf-8"))
    result, kept = decode_with_headers(headers, value, CURRENCIES)
    assert result == expected
    assert kept is not None
    assert decode(kept, CURRENCIES) == expected  # what is kept is the structured form of the same event


@given(st.sampled_from(EXAMPLES), st.sampled_from([("score", 11), ("customer_id", ""), ("amount", -1)]))
def test_an_invalid_event_gets_the_same_reason_in_both_modes(example: dict[str, Any], bad: tuple[str, Any]) -> None:
    field, value = bad
    if field not in example["data"]:
        return
    ev = {**example, "data": {**example["data"], field: value}}
    expected = decode(structured(ev), CURRENCIES)
    assert isinstance(expected, Rejection)
    result, _ = decode_with_headers(*binary(ev), CURRENCIES)
    assert isinstance(result, Rejection)
    assert result.reason == expected.reason


def reason(headers: Headers, value: bytes | None) -> str:
    result, _ = decode_with_headers(headers, value, CURRENCIES)
    assert isinstance(result, Rejection), result
    return result.reason


def test_what_is_wrong_with_a_binary_mode_message_is_named() -> None:
    headers, value = binary(EXAMPLES[0])
    assert reason([h for h in headers if h[0] != "ce_type"], value) == "missing_field"
    assert reason([h for h in headers if h[0] != "ce_id"], value) == "missing_field"
    assert reason([*headers, ("content-type", b"application/avro")], value) == "not_json"
    assert reason(headers, value + b', "id": "other"') == "not_json"  # data is one JSON value, nothing more
    assert reason(headers, None) == "missing_field"
    assert reason([("ce_type", b"\xff"), *headers], value) == "not_json"
    assert reason([("ce_specversion", b"0.3"), *headers[1:]], value) == "bad_specversion"
    assert reason([*headers[:4], ("ce_time", b"2025-03-03 09:00")], value) == "bad_time"


def test_headers_without_ce_specversion_leave_a_structured_event_as_it_is() -> None:
    value = structured(EXAMPLES[0])
    headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
               ("content-type", b"application/cloudevents+json")]
    result, kept = decode_with_headers(headers, value, CURRENCIES)
    assert result == decode(value, CURRENCIES)
    assert kept is value


def test_the_route_stage_routes_binary_mode_and_dead_letters_its_structured_form() -> None:
    log, counted = MemoryLog(SETTINGS.partitions), {}
    topics = SETTINGS.topics
    stage = RouteStage(recorder=Recorder(SETTINGS.currency, SETTINGS.rates), producer=log, rekeyed=topics.rekeyed,
                       partitions=topics.partitions, max_bytes=4096,
                       dead_letters=DeadLetters(log, topics.dlq, counted.update))
    good_headers, good = binary(EXAMPLES[0])
    bad_ev = {**EXAMPLES[10], "data": {**EXAMPLES[10]["data"], "score": 11}}  # survey.nps
    bad_headers, bad = binary(bad_ev)
    messages = [Message(b"c-1001", good, 0, 0, good_headers), Message(b"c-1001", bad, 1, 0, bad_headers)]
    asyncio.run(stage.handle({Partition(topics.lifecycle, 0): messages}))
    routed = [r for m in log.everything(topics.rekeyed) for r in decode_batch(m.value or b"")]
    assert [r.key for r in routed] == [b"c-1001"]
    assert decode(routed[0].raw, CURRENCIES) == decode(structured(EXAMPLES[0]), CURRENCIES)
    (letter,) = log.everything(topics.dlq)
    assert dict(letter.headers)["reason"] == b"bad_value"
    assert counted == {"bad_value": 1}
    assert json.loads(letter.value or b"") == bad_ev  # a self-contained event: fix it and publish it again
    # ... or redrive it: its binary-mode headers went with the binary form
    assert not [name for name, _ in letter.headers if name.startswith(ORIGINAL_HEADER + "ce_")]
