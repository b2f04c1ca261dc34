"""The contract checks of docs/contract/events.md: each way a message can be wrong has its own reason."""

from __future__ import annotations

import pytest
from fixtures import encode, event
from hypothesis import given
from hypothesis import strategies as st

from core.settings import Settings
from streams.contract.decode import REASONS, Event, Rejection, decode
from streams.contract.events import DATA_TYPES, CustomerSignedUp

CURRENCIES = frozenset(["EUR", "USD"])
T = "2025-01-05T10:00:00+01:00"


def reason(value: bytes) -> str:
    result = decode(value, CURRENCIES, max_bytes=4096)
    assert isinstance(result, Rejection), result
    assert result.reason in REASONS
    assert result.message
    return result.reason


def test_valid_event_with_offset_is_converted_to_utc_microseconds() -> None:
    result = decode(encode(event("customer.signed_up", "2025-01-05T10:00:00.5+01:00", {"customer_id": "c"})),
                    CURRENCIES)
    assert isinstance(result, Event)
    assert result.time_us == 1736067600_500000
    assert result.data == CustomerSignedUp(customer_id="c")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\xff\xfe{", "not_json"),
        (b"{not json", "not_json"),
        (None, "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"text"', "not_object"),
        (b"x" * 5000, "too_large"),
        (encode(event("customer.signed_up", T, {"customer_id": "c"}) | {"specversion": "0.3"}), "bad_specversion"),
        (encode(event("customer.exploded", T, {"customer_id": "c"})), "unknown_type"),
        (encode(event("customer.signed_up", T, {})), "missing_field"),
        (encode({k: v for k, v in event("customer.signed_up", T, {"customer_id": "c"}).items() if k != "id"}),
         "missing_field"),
        (encode(event("customer.signed_up", T, {"customer_id": 7})), "wrong_type"),
        (encode(event("customer.signed_up", T, {"customer_id": "c"}) | {"data": [1]}), "wrong_type"),
        (encode(event("customer.signed_up", "2025-01-05T10:00:00", {"customer_id": "c"})), "bad_time"),
        (encode(event("customer.signed_up", "yesterday", {"customer_id": "c"})), "bad_time"),
        (encode(event("survey.nps", T, {"customer_id": "c", "score": 11})), "bad_value"),
        (encode(event("survey.csat", T, {"customer_id": "c", "score": 0})), "bad_value"),
        (encode(event("order.placed", T, {"customer_id": "c", "order_id": "o", "amount": -1, "currency": "EUR"})),
         "bad_value"),
        (encode(event("order.placed", T, {"customer_id": "c", "order_id": "o", "amount": 5, "currency": "JPY"})),
         "bad_currency"),
        (encode(event("customer.signed_up", T, {"customer_id": "c"}, id_="i" * 129)), "bad_value"),
        (encode(event("ticket.replied", T, {"customer_id": "c", "ticket_id": "t", "author": "bot"})), "bad_value"),
        (encode(event("customer.signed_up", T, {"customer_id": "c"})).replace(b'"c"', b'"\xff\xfe"'), "not_json"),
        (encode(event("customer.signed_up", T, {"customer_id": "c"})).replace(b'"test"', b'"\xc3"'), "not_json"),
        (encode(event("customer.signed_up", T, {})).replace(b'"data":{}', b'"data":' + b"[" * 3000), "not_json"),
        (b'{"a":' * 100_000, "too_large"),
        (encode(event("order.placed", T, {"customer_id": "c", "order_id": "o", "amount": 1e300, "currency": "EUR"})),
         "bad_value"),
    ],
)
def test_each_invalid_message_gets_its_reason(value: bytes, expected: str) -> None:
    if expected == "too_large":
        assert reason(value) == expected
        assert decode(value, CURRENCIES, max_bytes=1 << 21).reason == "not_json"  # type: ignore[union-attr]
        return
    assert reason(value) == expected


def test_every_type_of_the_contract_decodes() -> None:
    samples = {
        "customer.signed_up": {"customer_id": "c", "segment": {"plan": "pro"}},
        "customer.updated": {"customer_id": "c", "segment": {"plan": "basic"}},
        "customer.churned": {"customer_id": "c", "reason": "price"},
        "customer.reactivated": {"customer_id": "c"},
        "order.placed": {"customer_id": "c", "order_id": "o", "amount": 10.5, "currency": "EUR"},
        "order.refunded": {"customer_id": "c", "order_id": "o", "amount": 3, "currency": "USD"},
        "order.returned": {"customer_id": "c", "order_id": "o"},
        "ticket.opened": {"customer_id": "c", "ticket_id": "t", "kind": "complaint", "category": "billing"},
        "ticket.replied": {"customer_id": "c", "ticket_id": "t", "author": "agent"},
        "ticket.resolved": {"customer_id": "c", "ticket_id": "t"},
        "ticket.reopened": {"customer_id": "c", "ticket_id": "t"},
        "survey.nps": {"customer_id": "c", "score": 0},
        "survey.csat": {"customer_id": "c", "score": 5, "ticket_id": "t"},
        "feedback.received": {"customer_id": "c", "feedback_id": "f", "channel": "review", "rating": 4.5},
        "feedback.responded": {"customer_id": "c", "feedback_id": "f"},
        "rep.joined": {"rep_id": "r", "team": "north"},
        "rep.left": {"rep_id": "r"},
    }
    assert set(samples) == set(DATA_TYPES)
    for type_, data in samples.items():
        result = decode(encode(event(type_, T, data)), CURRENCIES)
        assert isinstance(result, Event), (type_, result)
        assert result.type == type_


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    assert isinstance(decode(value, CURRENCIES), Event | Rejection)


def test_with_another_reporting_currency_the_eur_rates_do_not_apply() -> None:
    usd = frozenset(Settings(currency="USD").rates)
    eur_order = encode(event("order.placed", T, {"customer_id": "c", "order_id": "o", "amount": 5, "currency": "EUR"}))
    rejection = decode(eur_order, usd)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "bad_currency"
    assert "'EUR' is not one of USD" in rejection.message
