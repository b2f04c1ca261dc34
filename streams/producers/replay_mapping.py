"""Column mappings of CSV exports (which column or constant gives each field of which event type),
and parsing of their cells: numbers with either decimal mark, times in many formats. No Kafka here.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import msgspec.inspect as mi

from core.errors import ConfigError
from streams.contract.events import DATA_TYPES
from streams.exceptions import StreamsError

ENVELOPE = ("id", "time", "source")
# Exports of orders or tickets often have one row per order/ticket and no id of its own.
REFS = ("order_id", "ticket_id", "feedback_id")
FILE_KEYS = frozenset({"delimiter", "decimal", "encoding", "id_seed", "time_format", "event"})
EVENT_KEYS = frozenset({"type", "map", "const", "values", "time_format", "optional"})
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PLAIN = {".": re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)"), ",": re.compile(r"[+-]?(\d+(,\d*)?|,\d+)")}
# Thousands separators only in their exact grouping, so "12,50" can never silently become 1250.
_GROUPED = {".": re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?"), ",": re.compile(r"[+-]?\d{1,3}(\.\d{3})+(,\d+)?")}
Fail = Callable[[str], ConfigError]


def _kind(t: mi.Type) -> str:
    if isinstance(t, mi.UnionType):
        return _kind(next(x for x in t.types if not isinstance(x, mi.NoneType)))
    return {mi.FloatType: "number", mi.IntType: "integer", mi.DictType: "segment"}.get(type(t), "text")


def _fields(cls: type) -> dict[str, tuple[str, bool]]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return {f.name: (_kind(f.type), f.required) for f in info.fields}


# Derived from the contract, so a field added to the contract is mappable without touching this file.
FIELDS = {name: _fields(cls) for name, cls in DATA_TYPES.items()}


@dataclass(frozen=True)
class EventMapping:
    """One event per row: ``columns`` / ``consts`` give each target (``id``, ``time``, ``source``, a
    ``data`` field or ``segment.DIMENSION``) a CSV column or a constant; ``values`` rename cells."""

    type: str
    columns: dict[str, str] = field(default_factory=dict)
    consts: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    time_format: str = ""
    optional: bool = False  # no event for a row whose time cell is empty (e.g. not churned yet)


@dataclass(frozen=True)
class Mapping:
    """How to read a CSV export and turn each row into one or more events."""

    events: tuple[EventMapping, ...]
    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8-sig"
    id_seed: str = ""  # replaces the file name in hashed ids, so a renamed re-export keeps its ids

    def fingerprint(self) -> str:
        return hashlib.sha256(msgspec.json.encode(asdict(self))).hexdigest()[:16]


class BadValue(StreamsError):
    """A cell (or line) that cannot become a valid event: the reason of the worker's decode and why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _check_target(type_: str, target: str, fail: Fail) -> None:
    name, dot, dim = target.partition(".")
    kind = FIELDS[type_].get(name, ("?",))[0]
    if target in ENVELOPE or (kind not in ("?", "segment") and not dot) or (kind == "segment" and dim):
        return
    allowed = [*ENVELOPE, *(f"{f}.DIMENSION" if k == "segment" else f for f, (k, _) in FIELDS[type_].items())]
    raise fail(f"{type_} has no target {target!r}; allowed: {', '.join(allowed)}")


def _event_mapping(doc: dict[str, Any], time_format: str, fail: Fail) -> EventMapping:
    if unknown := sorted(set(doc) - EVENT_KEYS):
        raise fail(f"unknown key {unknown[0]!r} in an event; allowed: {', '.join(sorted(EVENT_KEYS))}")
    type_ = doc.get("type")
    if type_ not in FIELDS:
        raise fail(f"type={type_!r}: must be one of {', '.join(FIELDS)}")
    columns, consts, values = (doc.get(k, {}) for k in ("map", "const", "values"))
    for key, table, ok in (("map", columns, (str,)), ("const", consts, (str, int, float)), ("values", values, (dict,))):
        if not isinstance(table, dict):
            raise fail(f"{type_}: [{key}] must be a table of TARGET = value")
        for target, value in table.items():
            _check_target(type_, target, fail)
            if isinstance(value, bool) or not isinstance(value, ok) or value in ("", {}):
                raise fail(f"{type_}: {key}.{target}={value!r}: must be a non-empty {ok[0].__name__}")
    if both := sorted(set(columns) & set(consts)):
        raise fail(f"{type_}: {both[0]!r} is both mapped to column {columns[both[0]]!r} and a constant; keep one")
    if "id" in consts:
        raise fail(f"{type_}: id cannot be a constant (each event needs its own); map a column or leave it out")
    given = {t.partition(".")[0] for t in [*columns, *consts]}
    for name, (_, required) in {"time": ("", True), **FIELDS[type_]}.items():
        if required and name not in given and name not in REFS:
            raise fail(f"{type_} needs {name!r}: --map {name}=COLUMN or --const {name}=VALUE")
    fmt = doc.get("time_format", time_format)
    if not isinstance(fmt, str) or (fmt and fmt not in ("unix", "unix_ms") and "%" not in fmt):
        raise fail(f"time_format={fmt!r}: must be a strptime format like %d.%m.%Y, or unix, or unix_ms")
    if not isinstance(optional := doc.get("optional", False), bool):
        raise fail(f"optional={optional!r}: must be true or false")
    values = {t: {str(k): str(v) for k, v in table.items()} for t, table in values.items()}
    return EventMapping(type_, columns, {k: str(v) for k, v in consts.items()}, values, fmt, optional)


def parse_mapping(doc: dict[str, Any], where: str = "mapping") -> Mapping:
    """Validate a mapping document (TOML or from options); :class:`ConfigError` names the bad value."""
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{where}: {message}")

    if unknown := sorted(set(doc) - FILE_KEYS - EVENT_KEYS):
        raise fail(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(FILE_KEYS | EVENT_KEYS))}")
    single = {k: v for k, v in doc.items() if k in EVENT_KEYS - {"time_format"}}
    if single and "event" in doc:
        raise fail("give either type, [map], [const] at the top or [[event]] tables, not both")
    events = doc.get("event", [single])
    if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
        raise fail("[[event]] must be one or more tables, each with a type")
    decimal, encoding, seed = doc.get("decimal", "."), doc.get("encoding", "utf-8-sig"), doc.get("id_seed", "")
    delimiter = doc.get("delimiter", ",")
    delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter, delimiter) if isinstance(delimiter, str) else delimiter
    if decimal not in (".", ","):
        raise fail(f"decimal={decimal!r}: must be '.' or ','")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
        raise fail(f"delimiter={delimiter!r}: must be one character such as ',' ';' '|' or 'tab'")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError) as exc:
        raise fail(f"encoding={encoding!r}: not a Python codec; e.g. utf-8-sig, latin-1, cp1252") from exc
    if not isinstance(seed, str):
        raise fail(f"id_seed={seed!r}: must be a string")
    time_format = doc.get("time_format", "")
    return Mapping(tuple(_event_mapping(e, time_format, fail) for e in events), delimiter, decimal, encoding, seed)


def parse_number(text: str, decimal: str) -> float:
    """``12.50``, ``1,234.50`` (decimal ``.``) or ``12,50``, ``1.234,50`` (decimal ``,``)."""
    other = "," if decimal == "." else "."
    if _PLAIN[decimal].fullmatch(text):
        return float(text.replace(",", "."))
    if _GROUPED[decimal].fullmatch(text):
        return float(text.replace(other, "").replace(",", "."))
    hint = f"; the mapping says decimal = {decimal!r}" if _PLAIN[other].fullmatch(text) else ""
    raise BadValue("wrong_type", f"{text!r} is not a number{hint}")


def parse_time(text: str, fmt: str, tz: ZoneInfo) -> datetime:
    """An aware datetime; times without an offset (and bare dates: midnight) are in ``tz``."""
    try:
        if fmt in ("unix", "unix_ms"):
            return _EPOCH + timedelta(microseconds=int(Decimal(text) * (10**6 if fmt == "unix" else 10**3)))
        t = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except (ValueError, InvalidOperation, OverflowError) as exc:
        want = f"time_format {fmt!r}" if fmt else "RFC 3339 / ISO 8601 (e.g. 2025-03-14 or 2025-03-14T09:30:00+01:00)"
        raise BadValue("bad_time", f"{text!r} does not match {want}") from exc
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


def rfc3339(t: datetime) -> str:
    u = t.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S") + (f".{u.microsecond:06d}" if u.microsecond else "") + "Z"


