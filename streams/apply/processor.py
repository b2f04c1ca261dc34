"""Applies valid events to their key's stored state: dedupe, allowed lateness, records, facts (no Kafka).

The owner of a key's partition hands over the stored state bytes and the key's new records in
arrival order, and gets back the new state and how the key's fact set (:mod:`metrics.blob`) changed;
the changelog carries both, so a restarted owner restores the state and every worker's
:class:`metrics.store.KpiStore` the facts. Several events of one key in one batch cost one replay.

The work itself is compiled (``native/``, Rust): it is most of a worker's CPU per event. The Python
reference it is checked against, byte for byte, lives in the tests (``tests/apply_reference``).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass

import retention_native

from core.slices import FactSettings
from metrics.blob import Delta
from metrics.facts import context
from metrics.lateness import Lateness
from metrics.records import TYPE_CODES, Rec
from streams.contract.decode import Event
from streams.exceptions import AmountTooLarge
from streams.route.records import Recorder
from streams.wire import Change, encode_change

MICRO = 1_000_000


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one event: ``status`` is applied, ignored (with the reason), duplicate, too_late or
    unprocessable (with the reason)."""

    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Update:
    """What some records did to one key: an outcome per record; when something was applied, the
    key's new state (which embeds its fact set) and how the fact set changed."""

    outcomes: list[Outcome]
    state: bytes | None
    newest_us: int | None
    delta: Delta | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What one partition's packs did: the changelog entries ``(key, state, entry)`` of the changed keys
    in first-seen order; the counted events per type name, repeats, ignored ones per reason and their
    event times; the too-late events as ``(pack, index, why)``; each pack's oldest input timestamp."""

    changes: list[tuple[bytes, bytes, bytes]]
    events: dict[str, int]
    duplicates: int
    ignored: dict[str, int]
    times_us: list[int]
    too_late: list[tuple[int, int, str]]
    oldest_ms: list[int]


TYPE_NAMES: dict[int, str] = {int(code): name for name, code in TYPE_CODES.items()}
GetMany = Callable[[list[bytes]], list[bytes | None]]


def lateness_rule(facts: FactSettings) -> Lateness:
    """The allowed-lateness rule of these settings (shared with the replay's dry-run simulation)."""
    return Lateness(facts.allowed_lateness_s * MICRO, facts.history_s * MICRO, facts.allowed_lateness, facts.history)


APPLIED = Outcome("applied")
DUPLICATE = Outcome("duplicate")
_COMMON = {"applied": APPLIED, "duplicate": DUPLICATE}


class Processor:
    """Applies a key's new records to its stored state; pure apart from the settings it reads."""

    def __init__(self, facts: FactSettings) -> None:
        self.facts = facts
        self.ctx = context(facts)  # what the KPI store needs of the same settings
        self.recorder = Recorder(facts.currency, facts.rates)
        self._engine = retention_native.Engine(
            [(name, list(values)) for name, values in facts.segments.items()], list(facts.churn_reasons),
            list(facts.ticket_categories), facts.allowed_lateness_s * MICRO, facts.history_s * MICRO,
            facts.allowed_lateness, facts.history)

    def apply_records(self, stored: bytes | None, records: list[Rec]) -> Update:
        """Apply ``records`` (one key's, in arrival order) to the stored state ``stored``."""
        statuses, state, newest, before, after, removed, added = self._engine.apply_records(stored, records)
        outcomes = [APPLIED] * len(records) if statuses is None else [
            _COMMON.get(status) or Outcome(status, detail) for status, detail in statuses]
        if state is None:
            return Update(outcomes, None, newest)
        return Update(outcomes, state, newest, Delta(before, after, removed, added))

    def apply_packs(self, packs: list[bytes], get_many: GetMany) -> Applied:
        """A partition's packs (``streams.wire`` batches of routed events) applied to the keys' states,
        which ``get_many`` reads (once, for every key of the packs)."""
        changes, types, duplicates, ignored, times, too_late, oldest = self._engine.apply_packs(packs, get_many)
        return Applied(changes, {TYPE_NAMES[code]: n for code, n in types}, duplicates, dict(ignored),
                       array("q", times).tolist(), too_late, oldest)

    def apply(self, stored: bytes | None, event: Event) -> tuple[Outcome, Update | None]:
        """One event (tests, replays): its outcome and the key's update (``None`` if unprocessable)."""
        try:
            record = self.recorder.record(event)
        except AmountTooLarge as exc:
            return Outcome("unprocessable", str(exc)), None
        update = self.apply_records(stored, [record])
        return update.outcomes[0], update


def change_entry(update: Update, timestamp_ms: int) -> bytes:
    """The changelog entry of a key's update (it has a state and a delta)."""
    d = update.delta
    if update.state is None or d is None:
        raise ValueError("an update that applied nothing has no changelog entry")
    return encode_change(Change(update.state, d.before, d.after, d.removed, d.added, update.newest_us, timestamp_ms))
