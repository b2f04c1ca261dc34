"""The reference of a partition's packs applied in one call (``Processor.apply_packs``): decode the
packs, group by key, apply each key's records, count the outcomes and write the changelog entries."""

from __future__ import annotations

from typing import Protocol

from metrics.records import Rec
from streams.apply.processor import TYPE_NAMES, Applied, GetMany, Update, change_entry
from streams.wire import Routed, decode_batch


class Applies(Protocol):
    def apply_records(self, stored: bytes | None, records: list[Rec]) -> Update: ...


def _group(packs: list[bytes]) -> tuple[dict[bytes, list[tuple[int, int, Routed]]], list[int]]:
    by_key: dict[bytes, list[tuple[int, int, Routed]]] = {}
    oldest_ms: list[int] = []
    for pack, value in enumerate(packs):
        oldest = 0
        for index, routed in enumerate(decode_batch(value)):
            by_key.setdefault(routed.key, []).append((pack, index, routed))
            if routed.timestamp_ms and (not oldest or routed.timestamp_ms < oldest):
                oldest = routed.timestamp_ms
        oldest_ms.append(oldest)
    return by_key, oldest_ms


def apply_packs(processor: Applies, packs: list[bytes], get_many: GetMany) -> Applied:
    by_key, oldest_ms = _group(packs)
    out = Applied([], {}, 0, {}, [], [], oldest_ms)
    events, ignored = out.events, out.ignored
    duplicates = 0
    for (key, items), stored in zip(by_key.items(), get_many(list(by_key)), strict=True):
        update = processor.apply_records(stored, [routed.rec for _, _, routed in items])
        first_ts = 0
        for (pack, index, routed), outcome in zip(items, update.outcomes, strict=True):
            if outcome.status == "too_late":
                out.too_late.append((pack, index, outcome.detail))
                continue
            name = TYPE_NAMES[routed.rec.type]
            events[name] = events.get(name, 0) + 1
            out.times_us.append(routed.rec.time_us)
            if outcome.status == "duplicate":
                duplicates += 1
                continue
            if outcome.status == "ignored":
                ignored[outcome.detail] = ignored.get(outcome.detail, 0) + 1
            if not first_ts or routed.timestamp_ms < first_ts:
                first_ts = routed.timestamp_ms
        if update.state is not None and update.delta is not None:
            out.changes.append((key, update.state, change_entry(update, first_ts)))
    return Applied(out.changes, events, duplicates, ignored, out.times_us, out.too_late, oldest_ms)
