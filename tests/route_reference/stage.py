"""The route stage's packs and dead letters of one fetch as the pure-Python stage made them: every
message through the full decoder, each valid one recorded and appended to its key's partition, packs
cut at ``PACK_BYTES`` of raw payload."""

from __future__ import annotations

from streams.ports import Batch
from streams.route.stage import PACK_BYTES, RouteStage
from streams.wire import Routed, encode_batch, partition_of

Letter = tuple[bytes | None, str, tuple[str, int, int]]  # the bytes kept, the reason, where it came from


def reference_route(stage: RouteStage, batch: Batch) -> tuple[list[tuple[int, bytes]], list[Letter]]:
    """``(partition, pack)`` in the order the stage sends them, and the dead letters in fetch order."""
    packs: dict[int, list[Routed]] = {}
    letters: list[Letter] = []
    for tp, records in batch.items():
        for r in records:
            result, value = stage._decode(r, tp.topic, tp.partition)
            if isinstance(result, Routed):
                packs.setdefault(partition_of(result.key, stage.partitions), []).append(result)
            else:
                letters.append((value, result.reason, (tp.topic, tp.partition, r.offset)))
    return [(partition, encode_batch(pack)) for partition, pending in packs.items() for pack in _split(pending)], \
        letters


def _split(routed: list[Routed]) -> list[list[Routed]]:
    """Packs of at most about ``PACK_BYTES`` of raw payload (a single huge event goes alone)."""
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
