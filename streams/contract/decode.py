"""Decode and validate one Kafka message value into an :class:`Event`, or a :class:`Rejection`.

Never raises on input: every way a message can be wrong maps to a machine-readable reason
(see :data:`REASONS`) and a human-readable message naming the field and the bad value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from streams.contract.events import DATA_TYPES, DataType, Envelope, OrderPlaced, OrderRefunded, OrderReturned

REASONS: dict[str, str] = {
    "too_large": "the message is larger than max_message_bytes",
    "not_json": "the value is not UTF-8 JSON",
    "not_object": "the value is JSON but not an object",
    "bad_specversion": "specversion is not '1.0'",
    "unknown_type": "type is not one of the types of the event contract",
    "missing_field": "a required attribute or data field is missing",
    "wrong_type": "an attribute or field has the wrong JSON type",
    "bad_time": "time is not an RFC 3339 timestamp with an offset",
    "bad_value": "a value is out of its allowed range or pattern (score, amount, length…)",
    "bad_currency": "currency is neither the reporting currency nor given a rate in currency_rates",
    "too_late": "the event is older than the allowed lateness behind the newest event of its customer and stream",
    "unprocessable": "valid by the contract but could not be applied (e.g. an amount too large to store)",
}


@dataclass(frozen=True, slots=True)
class Event:
    """A valid event: envelope attributes plus typed ``data``; ``time_us`` is epoch microseconds."""

    id: str
    type: str
    source: str
    time_us: int
    data: DataType


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was rejected: a key of :data:`REASONS` and a one-line explanation."""

    reason: str
    message: str


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ENVELOPE = msgspec.json.Decoder(Envelope)
_DATA = {name: msgspec.json.Decoder(cls) for name, cls in DATA_TYPES.items()}


def _classify(exc: msgspec.DecodeError, where: str) -> Rejection:
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return Rejection("not_json", f"{where}: {text}")
    if "`$.time`" in text and where == "envelope":
        return Rejection("bad_time", f"time: {text}")
    if "`$.specversion`" in text:
        return Rejection("bad_specversion", f"specversion: {text}")
    if text.startswith("Object missing required field"):
        return Rejection("missing_field", f"{where}: {text}")
    if text.startswith("Expected `object`, got") and " - at " not in text:
        reason = "not_object" if where == "envelope" else "wrong_type"
        return Rejection(reason, f"{where}: {text}")
    if text.startswith("Expected `") and ", got `" in text:
        return Rejection("wrong_type", f"{where}: {text}")
    return Rejection("bad_value", f"{where}: {text}")


def decode(
    value: bytes | None,
    currencies: frozenset[str],
    max_bytes: int = 1_048_576,
) -> Event | Rejection:
    """Validate ``value`` against the event contract (docs/contract/events.md); ``currencies`` are the
    accepted ISO codes."""
    if value is None:
        return Rejection("not_json", "the message has no value (tombstone)")
    if len(value) > max_bytes:
        return Rejection("too_large", f"{len(value)} bytes > max_message_bytes={max_bytes}")
    try:
        env = _ENVELOPE.decode(value)
    except msgspec.DecodeError as exc:
        return _classify(exc, "envelope")
    except (ValueError, RecursionError) as exc:  # invalid UTF-8 in a string, absurd nesting
        return Rejection("not_json", f"envelope: {type(exc).__name__}: {str(exc)[:200]}")
    data_decoder = _DATA.get(env.type)
    if data_decoder is None:
        return Rejection("unknown_type", f"type {env.type[:100]!r} is not one of the types of the event contract")
    try:
        data = data_decoder.decode(env.data)
    except msgspec.DecodeError as exc:
        return _classify(exc, "data")
    except (ValueError, RecursionError) as exc:
        return Rejection("not_json", f"data: {type(exc).__name__}: {str(exc)[:200]}")
    if isinstance(data, OrderPlaced | OrderRefunded | OrderReturned):
        currency = data.currency
        if currency is not None and currency not in currencies:
            allowed = ", ".join(sorted(currencies))
            return Rejection("bad_currency", f"data.currency={currency!r} is not one of {allowed} (the reporting "
                             "currency and those currency_rates gives a rate for)")
    time_us = _epoch_us(env)
    return Event(env.id, env.type, env.source, time_us, data)


def _epoch_us(env: Envelope) -> int:
    t = env.time
    # timestamp() goes through float and can be off by one microsecond; compute exactly.
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds



# CloudEvents' Kafka binding, binary mode: the attributes travel as ce_* headers, the data is the value.
_CE_HEADERS = {"ce_specversion": "specversion", "ce_id": "id", "ce_source": "source", "ce_type": "type",
               "ce_time": "time"}
_RAW = msgspec.json.Decoder(msgspec.Raw)


def decode_with_headers(
    headers: Sequence[tuple[str, bytes]],
    value: bytes | None,
    currencies: frozenset[str],
    max_bytes: int = 1_048_576,
) -> tuple[Event | Rejection, bytes | None]:
    """:func:`decode` for a message with headers, and the bytes to keep of it (for the dead-letter topic).

    A binary-mode CloudEvent (a ``ce_specversion`` header) becomes the structured-mode event it stands
    for and is decoded as one, so both modes give the same :class:`Event`; what is kept is that
    structured form, which any later stage can dead-letter and a publisher can republish as it is.
    Headers without ``ce_specversion`` (tracing, a structured event's content type) change nothing.
    """
    structured = _structured(headers, value)
    if structured is None:
        return decode(value, currencies, max_bytes), value
    if isinstance(structured, Rejection):
        return structured, value
    return decode(structured, currencies, max_bytes), structured


def _structured(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> bytes | Rejection | None:
    """The structured-mode bytes of a binary-mode event, why it cannot be one, or None if it is not one."""
    attributes: dict[str, str] = {}
    content_type = ""
    for name, raw in headers:
        attribute = _CE_HEADERS.get(name)
        if attribute is None and name != "content-type":
            continue
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return Rejection("not_json", f"header {name}: not UTF-8")
        if attribute is None:
            content_type = text
        else:
            attributes.setdefault(attribute, text)
    if "specversion" not in attributes:
        return None
    media = content_type.partition(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        return Rejection("not_json", f"content-type {content_type[:100]!r}: the data of a binary-mode event "
                         "must be JSON (application/json)")
    if value is None:
        return Rejection("missing_field", "data: a binary-mode event needs the data as the message value")
    try:
        _RAW.decode(value)  # one JSON value, nothing after it: it cannot add attributes of its own
    except msgspec.DecodeError as exc:
        return Rejection("not_json", f"data: {exc}")
    except (ValueError, RecursionError) as exc:
        return Rejection("not_json", f"data: {type(exc).__name__}: {str(exc)[:200]}")
    fields = b",".join(msgspec.json.encode(k) + b":" + msgspec.json.encode(v) for k, v in attributes.items())
    return b"{" + fields + b',"data":' + value + b"}"
