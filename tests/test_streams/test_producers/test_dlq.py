"""Dead letters as ``retention-monitor dlq`` reads them: parsing, filters, positions, redrive headers."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fixtures import encode, event

from core.errors import ConfigError
from streams.contract.decode import Rejection
from streams.memory import MemoryLog
from streams.producers.dlq import REDRIVE_HEADER, Filter, Letter, Position, letter, parse_when, pretty, redrive_headers
from streams.route.dead_letters import DeadLetters

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
ORDER = encode(event("order.placed", "2025-03-14T10:00:00Z",
                     {"customer_id": "c1", "order_id": "o1", "amount": 12.5, "currency": "SEK"}, id_="evt-o1"))


def dead_letter(value: bytes | None = ORDER, own: list[tuple[str, bytes]] | None = None,
                reason: str = "bad_currency") -> Letter:
    """A dead letter as the worker writes it (through the route stage's own DeadLetters), read back."""
    log = MemoryLog()
    letters = DeadLetters(log, "dlq", lambda _: None)

    async def send() -> None:
        await letters.send(b"c1", value, Rejection(reason, "data.currency='SEK' is not one of CHF, EUR"),
                           ("shop.orders", 2, 41), own or [])

    asyncio.run(send())
    m = log.messages("dlq")[0]
    return letter(Position(0, m.offset), int(NOW.timestamp() * 1000), m.key, m.value, m.headers)


def test_a_dead_letter_reads_back_with_its_origin_identity_and_own_headers() -> None:
    item = dead_letter(own=[("traceparent", b"00-abc-01"), ("reason", b"the producer's own header")])
    assert (item.reason, item.source_topic, item.source_partition, item.source_offset) == (
        "bad_currency", "shop.orders", 2, 41)
    assert (item.event_type, item.event_id, item.key, item.value) == ("order.placed", "evt-o1", b"c1", ORDER)
    # the producer's headers come back as they were, even one named like ours
    assert item.headers == [("traceparent", b"00-abc-01"), ("reason", b"the producer's own header")]
    assert item.redrive_of == ""


def test_identity_of_bytes_that_are_not_json_comes_from_cloudevents_headers() -> None:
    item = dead_letter(b"\x00\x01 not json", own=[("ce_type", b"ticket.opened"), ("ce_id", b"t-9")], reason="not_json")
    assert (item.event_type, item.event_id) == ("ticket.opened", "t-9")
    assert (dead_letter(b"[1, 2]").event_type, dead_letter(None).event_id) == ("", "")


def test_redrive_headers_are_the_own_headers_plus_one_naming_the_dead_letter() -> None:
    first = dead_letter(own=[("traceparent", b"x")])
    assert redrive_headers(first) == [("traceparent", b"x"), (REDRIVE_HEADER, b"0:0")]
    # a redriven message rejected again: its next redrive names the newer dead letter only
    again = dead_letter(own=redrive_headers(first))
    assert again.redrive_of == "0:0"
    assert redrive_headers(replace(again, position=Position(3, 7))) == [("traceparent", b"x"), (REDRIVE_HEADER, b"3:7")]


@pytest.mark.parametrize(("chosen", "expected"), [
    (Filter(), True),
    (Filter(reasons=frozenset({"bad_currency", "too_late"})), True),
    (Filter(reasons=frozenset({"missing_field"})), False),
    (Filter(types=frozenset({"order.placed"})), True),
    (Filter(types=frozenset({"order.refunded"})), False),
    (Filter(since_ms=int(NOW.timestamp() * 1000)), True),  # since is inclusive
    (Filter(since_ms=int(NOW.timestamp() * 1000) + 1), False),
    (Filter(until_ms=int(NOW.timestamp() * 1000)), False),  # until is exclusive
    (Filter(until_ms=int(NOW.timestamp() * 1000) + 1), True),
    (Filter(reasons=frozenset({"bad_currency"}), types=frozenset({"ticket.opened"})), False),  # every condition
])
def test_filter(chosen: Filter, expected: bool) -> None:
    assert chosen.matches(dead_letter()) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("2h", datetime(2025, 3, 14, 10, 0, tzinfo=UTC)),
    ("7d", datetime(2025, 3, 7, 12, 0, tzinfo=UTC)),
    ("2025-03-14T09:30:00Z", datetime(2025, 3, 14, 9, 30, tzinfo=UTC)),
    ("2025-03-14T09:30:00+01:00", datetime(2025, 3, 14, 8, 30, tzinfo=UTC)),
])
def test_when(text: str, expected: datetime) -> None:
    assert parse_when("--since", text, NOW) == int(expected.timestamp() * 1000)


@pytest.mark.parametrize("text", ["yesterday", "2025-03-14T09:30:00", "2025-03-14", "-2h"])
def test_a_bad_when_names_the_value_and_what_is_allowed(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"^--until '{text}': expected RFC 3339 with an offset .* like 30m, 2h"):
        parse_when("--until", text, NOW)


def test_positions() -> None:
    assert Position.parse("3:17", 4) == Position(3, 17)
    assert str(Position(3, 17)) == "3:17"
    assert Position.parse("17", 1) == Position(0, 17)
    with pytest.raises(ConfigError, match=r"^position '17' is not PARTITION:OFFSET with a partition 0-3$"):
        Position.parse("17", 4)
    with pytest.raises(ConfigError, match=r"^position '4:1' is not PARTITION:OFFSET with a partition 0-3$"):
        Position.parse("4:1", 4)


def test_pretty_indents_json_and_shows_other_bytes_as_text() -> None:
    assert pretty(b'{"id":"a","data":{"x":1}}') == '{\n  "id": "a",\n  "data": {\n    "x": 1\n  }\n}'
    assert pretty(b"caf\xe9 {") == "caf\\xe9 {"
    assert pretty(None) == "(no value: a tombstone)"
