"""The Python reference of the apply step (dedupe, allowed lateness, records, facts, delta), kept only
to check the compiled :class:`streams.apply.processor.Processor` against, byte for byte.
"""

from __future__ import annotations

from apply_reference import blob, stage
from apply_reference.prune import prune
from apply_reference.replay import derive
from core.slices import FactSettings
from metrics.facts import context
from metrics.lateness import newest_by_stream, stream_of
from metrics.records import CustomerState, Rec, decode_state, encode_state
from streams.apply.processor import (
    APPLIED,
    DUPLICATE,
    MICRO,
    Applied,
    Delta,
    GetMany,
    Outcome,
    Update,
    lateness_rule,
)
from streams.route.records import Recorder


class ReferenceProcessor:
    """Applies a key's new records to its stored state; pure apart from the settings it reads."""

    def __init__(self, facts: FactSettings) -> None:
        self.facts = facts
        self.ctx = context(facts)
        self.history_us = facts.history_s * MICRO
        self.lateness = lateness_rule(facts)
        self.recorder = Recorder(facts.currency, facts.rates)

    def apply_packs(self, packs: list[bytes], get_many: GetMany) -> Applied:
        return stage.apply_packs(self, packs, get_many)

    def apply_records(self, stored: bytes | None, records: list[Rec]) -> Update:
        """Apply ``records`` (one key's, in arrival order) to the stored state ``stored``."""
        old = decode_state(stored)
        kept = old.records
        newest = old.newest_us
        seen = {r.id for r in kept}
        outcomes: list[Outcome] = []
        added: list[Rec] = []
        lateness, quick = self.lateness, self.lateness.lateness_us
        by_stream: dict[str, int] | None = None  # only looked up for events older than the key's newest
        for rec in records:
            if rec.id in seen:
                outcomes.append(DUPLICATE)
                continue
            # Per key and stream, in arrival order (metrics.lateness); nothing within lateness of the
            # key's newest event can be late, so most events skip the per-stream lookup.
            if newest is not None and rec.time_us < newest - quick:
                if by_stream is None:
                    by_stream = newest_by_stream(kept + added)
                late = lateness.judge(rec.time_us, rec.type, newest, by_stream.get(stream_of(rec.type)))
                if late is not None:
                    outcomes.append(Outcome("too_late", f"{late.behind_us / MICRO:.0f}s behind {late.what} of the "
                                            f"same key, {late.limit}"))
                    continue
            seen.add(rec.id)
            added.append(rec)
            newest = rec.time_us if newest is None else max(newest, rec.time_us)
            if by_stream is not None:
                stream = stream_of(rec.type)
                by_stream[stream] = max(by_stream.get(stream, rec.time_us), rec.time_us)
            outcomes.append(APPLIED)
        if not added:
            return Update(outcomes, None, newest)
        assert newest is not None
        merged = kept + added
        if (kept and min(r.sort_key() for r in added) < kept[-1].sort_key()) or len(added) > 1:
            merged.sort(key=Rec.sort_key)
        merged = prune(merged, newest - self.history_us, self.history_us)
        derived = derive(merged, self.ctx)
        if derived.ignored:
            outcomes = [Outcome("ignored", derived.ignored[rec.id]) if o is APPLIED and rec.id in derived.ignored
                        else o for o, rec in zip(outcomes, records, strict=True)]
        new_blob = blob.encode(derived.facts)
        state = encode_state(CustomerState(records=merged, newest_us=newest, facts=new_blob))
        d = blob.changed(self._old_facts(old), new_blob, derived.facts)
        return Update(outcomes, state, newest, Delta(d.before, d.after, blob.encode(d.removed), blob.encode(d.added)))

    def _old_facts(self, old: CustomerState) -> bytes:
        if old.facts:
            return old.facts
        if old.records:  # a state stored before states carried their facts
            return blob.encode(derive(old.records, self.ctx).facts)
        return EMPTY_FACTS


EMPTY_FACTS = blob.encode([])
