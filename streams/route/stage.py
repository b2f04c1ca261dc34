"""Stage 1: validate every input message and re-key the valid ones, packed, by customer partition.

For one fetch: decode and validate each value (msgspec, :func:`streams.contract.decode.decode`), turn the
valid event into its compact record (:meth:`streams.route.records.Recorder.record`), and append it
to the pack of its key's partition; invalid messages go to the dead-letter topic with the reason.
Then one message per partition goes to the re-keyed topic, and the fetch counts as handled once
Kafka acknowledged every pack and dead letter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from streams.contract.decode import Rejection, decode, decode_with_headers
from streams.contract.events import partition_key
from streams.exceptions import AmountTooLarge
from streams.ports import Batch, Producer
from streams.route.dead_letters import DeadLetters
from streams.route.records import Recorder
from streams.wire import Routed, encode_batch, partition_of

log = logging.getLogger(__name__)

PACK_BYTES = 128 * 1024  # a pack's raw payload (~500 events, ~20 ms to apply); more packs beyond it


class RouteStage:
    """Validates and routes one fetch at a time; see the module docstring."""

    def __init__(self, *, recorder: Recorder, producer: Producer, rekeyed: str, partitions: int,
                 dead_letters: DeadLetters, max_bytes: int) -> None:
        self.recorder = recorder
        self.producer = producer
        self.rekeyed = rekeyed
        self.partitions = partitions
        self.dead_letters = dead_letters
        self.max_bytes = max_bytes
        self.currencies = frozenset(recorder.rates)

    async def handle(self, batch: Batch) -> None:
        packs: dict[int, list[Routed]] = {}
        letters: list[Awaitable[None]] = []
        rejected: dict[str, int] = {}
        currencies, max_bytes, record = self.currencies, self.max_bytes, self.recorder.record
        partitions = self.partitions
        for tp, records in batch.items():
            topic, source_partition = tp.topic, tp.partition
            for r in records:
                value = r.value
                try:
                    if r.headers:  # maybe a binary-mode CloudEvent; the common message has no headers
                        result, value = decode_with_headers(r.headers, value, currencies, max_bytes)
                    else:
                        result = decode(value, currencies, max_bytes)
                    if isinstance(result, Rejection):
                        rejection = result
                    else:  # a decoded event had bytes
                        key = partition_key(result.data).encode()
                        raw = value or b""
                        routed = Routed(key, record(result), raw, topic, source_partition, r.offset, r.timestamp)
                        packs.setdefault(partition_of(key, partitions), []).append(routed)
                        continue
                except AmountTooLarge as exc:
                    rejection = Rejection("unprocessable", str(exc))
                except Exception as exc:  # decode() maps every known problem; a bug must still lose nothing
                    log.error("could not route a message (%s); dead-lettered as unprocessable", type(exc).__name__)
                    log.debug("routing failure", exc_info=True)  # may quote the message
                    rejection = Rejection("unprocessable", f"{type(exc).__name__}: {str(exc)[:500]}")
                rejected[rejection.reason] = rejected.get(rejection.reason, 0) + 1
                # A binary-mode event is dead-lettered in structured form: its ce_* headers no longer apply
                # (a redrive of the letter must not read it as binary mode again).
                kept = r.headers if value is r.value else [h for h in r.headers if not _is_binary_mode(h[0])]
                letters.append(self.dead_letters.send(r.key, value, rejection, (topic, source_partition, r.offset),
                                                     kept))
        futures: list[Any] = []
        for partition, pending in packs.items():
            for pack in _split(pending):
                futures.append(await self.producer.send(self.rekeyed, encode_batch(pack), partition=partition))
        await asyncio.gather(*futures, *letters)
        if rejected:
            self.dead_letters.count(rejected)


def _is_binary_mode(header: str) -> bool:
    return header.startswith("ce_") or header == "content-type"


def _split(routed: list[Routed]) -> list[list[Routed]]:
    """Packs of at most about :data:`PACK_BYTES` of raw payload (a single huge event goes alone)."""
    out: list[list[Routed]] = []
    pack: list[Routed] = []
    size = 0
    for r in routed:
        if pack and size + len(r.raw) > PACK_BYTES:
            out.append(pack)
            pack, size = [], 0
        pack.append(r)
        size += len(r.raw) + 100
    if pack:
        out.append(pack)
    return out
