"""What the monitor writes to its own topics: packed batches of routed events, and changelog entries.

Design notes: docs/architecture.md, "streams/wire.py".
"""

from __future__ import annotations

import zlib

import msgspec

from metrics.records import Rec


class Routed(msgspec.Struct, array_like=True, frozen=True):
    """A valid event on its way to its key's partition."""

    key: bytes
    rec: Rec
    raw: bytes
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


class Change(msgspec.Struct, array_like=True, frozen=True):
    """A key's new state (which embeds its fact set) and how its facts changed: ``removed`` and
    ``added`` (fact blobs) turn the fact set with checksum ``before`` into the one with ``after``.
    ``timestamp_ms`` is 0 when no input message caused it."""

    state: bytes
    before: int
    after: int
    removed: bytes
    added: bytes
    newest_us: int | None
    timestamp_ms: int = 0


_ENCODER = msgspec.msgpack.Encoder()
_BATCH = msgspec.msgpack.Decoder(list[Routed])
_CHANGE = msgspec.msgpack.Decoder(Change)


def encode_batch(events: list[Routed]) -> bytes:
    return _ENCODER.encode(events)


def encode_routed(event: Routed) -> bytes:
    """One routed event; a pack (:func:`encode_batch`) is an array header and its events' bytes."""
    return _ENCODER.encode(event)


def decode_batch(value: bytes) -> list[Routed]:
    return _BATCH.decode(value)


def encode_change(change: Change) -> bytes:
    return _ENCODER.encode(change)


def decode_change(value: bytes) -> Change:
    return _CHANGE.decode(value)


def partition_of(key: bytes, partitions: int) -> int:
    """The re-keyed (and changelog) partition of a key: stable across processes and versions."""
    return zlib.crc32(key) % partitions
