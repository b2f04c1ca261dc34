"""Stage 1: validate every input message and re-key the valid ones, packed, by customer partition.

For one fetch: the compiled fast path (``native/src/route.rs``) reads each usual message, records it
and appends it to its key's partition; a message it does not certainly accept is decoded here
(msgspec, :func:`streams.contract.decode.decode`, the contract's one source of truth) into its record
(:meth:`streams.route.records.Recorder.record`) or its reason; invalid messages go to the dead-letter
topic with the reason. Then the packs go to the re-keyed topic, and the fetch counts as handled once
Kafka acknowledged every pack and dead letter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import retention_native

from streams.contract.decode import Rejection, decode, decode_with_headers
from streams.contract.events import partition_key
from streams.exceptions import AmountTooLarge
from streams.ports import Batch, InputMessage, Producer
from streams.route.dead_letters import DeadLetters
from streams.route.records import Recorder
from streams.wire import Routed, encode_routed, partition_of

log = logging.getLogger(__name__)

PACK_BYTES = 128 * 1024  # a pack's raw payload (~500 events, ~20 ms to apply); more packs beyond it
Decoded = tuple[Routed | Rejection, bytes | None]  # routed or rejected, and the bytes kept of the message


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
        self.router = retention_native.Router(recorder.currency, list(recorder.rates.items()), partitions, max_bytes)

    async def handle(self, batch: Batch) -> None:
        # The compiled fast path routes the usual message; what it leaves pending (headers, a tombstone,
        # an event it does not certainly accept) is decoded here and fills its slot, in fetch order.
        fetch = retention_native.Fetch()
        letters: list[Awaitable[None]] = []
        rejected: dict[str, int] = {}
        for tp, records in batch.items():
            base = len(fetch)
            for i in self.router.scan(fetch, records, tp.topic, tp.partition):
                r = records[i]
                result, value = self._decode(r, tp.topic, tp.partition)
                if isinstance(result, Routed):
                    fetch.fill(base + i, partition_of(result.key, self.partitions), encode_routed(result),
                               len(result.raw))
                    continue
                rejection = result
                fetch.drop(base + i)
                rejected[rejection.reason] = rejected.get(rejection.reason, 0) + 1
                # A binary-mode event is dead-lettered in structured form: its ce_* headers no longer apply
                # (a redrive of the letter must not read it as binary mode again).
                kept = r.headers if value is r.value else [h for h in r.headers if not _is_binary_mode(h[0])]
                letters.append(self.dead_letters.send(r.key, value, rejection, (tp.topic, tp.partition, r.offset),
                                                     kept))
        futures: list[Any] = []
        for partition, pack in fetch.packs(PACK_BYTES):
            futures.append(await self.producer.send(self.rekeyed, pack, partition=partition))
        await asyncio.gather(*futures, *letters)
        if rejected:
            self.dead_letters.count(rejected)

    def _decode(self, r: InputMessage, topic: str, source_partition: int) -> Decoded:
        """The full decoder's answer for one message, and the bytes to keep of it."""
        value = r.value
        try:
            if r.headers:  # maybe a binary-mode CloudEvent; the common message has no headers
                result, value = decode_with_headers(r.headers, value, self.currencies, self.max_bytes)
            else:
                result = decode(value, self.currencies, self.max_bytes)
            if isinstance(result, Rejection):
                return result, value
            key = partition_key(result.data).encode()
            raw = value or b""  # a decoded event had bytes
            return Routed(key, self.recorder.record(result), raw, topic, source_partition, r.offset, r.timestamp), value
        except AmountTooLarge as exc:
            return Rejection("unprocessable", str(exc)), value
        except Exception as exc:  # decode() maps every known problem; a bug must still lose nothing
            log.error("could not route a message (%s); dead-lettered as unprocessable", type(exc).__name__)
            log.debug("routing failure", exc_info=True)  # may quote the message
            return Rejection("unprocessable", f"{type(exc).__name__}: {str(exc)[:500]}"), value


def _is_binary_mode(header: str) -> bool:
    return header.startswith("ce_") or header == "content-type"
