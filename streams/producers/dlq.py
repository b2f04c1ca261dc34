"""Dead letters as the ``dlq`` command sees them: parsed from a dead-letter message, filtered, redriven.

Pure (no Kafka): :mod:`streams.producers.redrive` reads and writes the topics. A dead letter holds the
rejected message's bytes and key, the headers :class:`streams.route.dead_letters.DeadLetters` adds and the
message's own headers (prefixed); a redrive sends back the bytes, key and own headers with
:data:`REDRIVE_HEADER` added, and records the dead letter's position in the compacted topic
``TopicSettings.redriven``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from core.errors import ConfigError
from core.settings import parse_duration
from streams.route.dead_letters import ORIGINAL_HEADER

REDRIVE_HEADER = "retention-redrive"  # on a redriven message: the dead letter's position, PARTITION:OFFSET
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a dead letter is: partition and offset of the dead-letter topic, written ``PARTITION:OFFSET``."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str, partitions: int) -> Position:
        """``P:O``, or a bare offset when the topic has one partition."""
        part, colon, offset = text.strip().rpartition(":")
        if not colon and partitions == 1:
            part = "0"
        if not (part.isdigit() and offset.isdigit()) or int(part) >= partitions:
            bare = " (or OFFSET: the topic has one partition)" if partitions == 1 else ""
            raise ConfigError(f"position {text!r} is not PARTITION:OFFSET{bare} with a partition 0-{partitions - 1}")
        return cls(int(part), int(offset))


@dataclass(frozen=True, slots=True)
class Letter:
    """One dead letter; ``headers`` are the rejected message's own, ``event_type`` and ``event_id`` what its
    bytes (or its CloudEvents headers) say, "" when they do not."""

    position: Position
    timestamp_ms: int  # when it was dead-lettered
    key: bytes | None
    value: bytes | None
    reason: str
    message: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    headers: Headers
    event_type: str
    event_id: str

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def redrive_of(self) -> str:
        """The position of the dead letter this message was redriven from ("" if it was not a redrive)."""
        return next((v.decode(errors="replace") for k, v in self.headers if k == REDRIVE_HEADER), "")

    @property
    def digest(self) -> str:
        """Of the bytes: a marker counts only for the dead letter it was written for (a recreated topic
        reuses positions)."""
        return hashlib.sha256(self.value or b"").hexdigest()[:32]


def letter(position: Position, timestamp_ms: int, key: bytes | None, value: bytes | None,
           headers: Sequence[tuple[str, bytes]]) -> Letter:
    """A dead letter from a message of the dead-letter topic (headers missing from it are "")."""
    ours: dict[str, str] = {}
    own: Headers = []
    for name, data in headers:
        if name.startswith(ORIGINAL_HEADER):
            own.append((name[len(ORIGINAL_HEADER):], data))
        else:
            ours.setdefault(name, data.decode(errors="replace"))
    kind, ident = _identity(value, own)
    return Letter(position, timestamp_ms, key, value, ours.get("reason", ""), ours.get("message", ""),
                  ours.get("source_topic", ""), _int(ours.get("source_partition")), _int(ours.get("source_offset")),
                  own, kind, ident)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _identity(value: bytes | None, own: Headers) -> tuple[str, str]:
    """The event's ``type`` and ``id`` from its JSON, else from CloudEvents binary-mode headers."""
    found = {name: data.decode(errors="replace") for name, data in own if name in ("ce_type", "ce_id")}
    kind, ident = found.get("ce_type", ""), found.get("ce_id", "")
    try:
        doc = msgspec.json.decode(value or b"")
    except (msgspec.DecodeError, ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        kind = doc["type"] if isinstance(doc.get("type"), str) else kind
        ident = doc["id"] if isinstance(doc.get("id"), str) else ident
    return kind, ident


@dataclass(frozen=True, slots=True)
class Filter:
    """Which dead letters a command acts on: every given condition must hold (an empty set: any)."""

    reasons: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    since_ms: int | None = None  # dead-lettered at or after
    until_ms: int | None = None  # dead-lettered before

    def matches(self, item: Letter) -> bool:
        return ((not self.reasons or item.reason in self.reasons)
                and (not self.types or item.event_type in self.types)
                and (self.since_ms is None or item.timestamp_ms >= self.since_ms)
                and (self.until_ms is None or item.timestamp_ms < self.until_ms))


def parse_when(option: str, text: str, now: datetime) -> int:
    """``--since``/``--until``: RFC 3339 with an offset, or a duration before ``now`` (``2h``); epoch ms."""
    try:
        return int((now.timestamp() - parse_duration(text)) * 1000)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ConfigError(f"{option} {text!r}: expected RFC 3339 with an offset (2025-03-14T09:00:00Z) "
                          "or a duration before now like 30m, 2h, 7d")
    return int(when.timestamp() * 1000)


def redrive_headers(item: Letter) -> Headers:
    """The message's own headers as published, with :data:`REDRIVE_HEADER` naming this dead letter (an
    earlier redrive's header replaced)."""
    return [*((k, v) for k, v in item.headers if k != REDRIVE_HEADER), (REDRIVE_HEADER, str(item.position).encode())]


def pretty(value: bytes | None) -> str:
    """The bytes for a reader: indented JSON when they are JSON, else their text (invalid UTF-8 escaped)."""
    if value is None:
        return "(no value: a tombstone)"
    try:
        return msgspec.json.format(value, indent=2).decode()
    except (msgspec.DecodeError, ValueError, UnicodeDecodeError):
        return value.decode(errors="backslashreplace")
