"""Applies valid events to their key's stored state: dedupe, allowed lateness, records, facts (no Kafka).

The owner of a key's partition hands over the stored state bytes and the key's new records in
arrival order, and gets back the new state and the key's full fact set (:mod:`metrics.blob`); the
changelog carries both, so a restarted owner restores the state and every worker's
:class:`metrics.store.KpiStore` the facts. Several events of one key in one batch cost one replay.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings
from metrics import blob
from metrics.facts import Context, derive
from metrics.lateness import Lateness, newest_by_stream, stream_of
from metrics.prune import prune
from metrics.records import TYPE_CODES, CustomerState, Rec, decode_state, encode_state
from metrics.segments import Segmenter
from streams.contract import events as c
from streams.contract.decode import Event

MICRO = 1_000_000
MAX_STORED = 2**63  # msgpack integers


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
    delta: blob.Delta | None = None


def context(settings: Settings) -> Context:
    return Context(
        segmenter=Segmenter(settings.segments),
        reasons=frozenset(settings.churn_reasons),
        categories=frozenset(settings.ticket_categories),
    )


def lateness_rule(settings: Settings) -> Lateness:
    """The allowed-lateness rule of these settings (shared with the replay's dry-run simulation)."""
    return Lateness(settings.allowed_lateness_seconds * MICRO, settings.history_seconds * MICRO,
                    settings.allowed_lateness, settings.history)  # fmt: skip


class Processor:
    """Turns events into records of the key's state; pure apart from the settings it reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx = context(settings)
        self.history_us = settings.history_seconds * MICRO
        self.lateness = lateness_rule(settings)
        self.rates = settings.rates

    def micro(self, amount: float | None, currency: str | None) -> int | None:
        """``amount`` in micro-units of the reporting currency (integers: sums are order-independent).

        An amount in the reporting currency is never multiplied (rounding ``x * 1.0`` is exact anyway,
        but the rule is: convert only what is foreign)."""
        if amount is None:
            return None
        reporting = self.settings.currency
        if currency is None or currency == reporting:
            value = round(amount * MICRO)
        else:
            value = round(amount * self.rates[currency] * MICRO)
        if value >= MAX_STORED:
            raise ValueError(f"amount {amount} {currency} is too large to store in {self.settings.currency}")
        return value

    def record(self, event: Event) -> Rec:
        d = event.data
        ref: str | None = None
        text: str | None = None
        value: int | None = None
        segment: dict[str, str] | None = None
        if isinstance(d, c.CustomerSignedUp | c.CustomerUpdated):
            segment = dict(d.segment)
        elif isinstance(d, c.CustomerChurned):
            text = d.reason
        elif isinstance(d, c.OrderPlaced | c.OrderRefunded | c.OrderReturned):
            ref, value = d.order_id, self.micro(d.amount, d.currency)
        elif isinstance(d, c.TicketOpened):
            ref, text = d.ticket_id, f"{d.kind}:{d.category or ''}"
        elif isinstance(d, c.TicketReplied):
            ref, text = d.ticket_id, d.author
        elif isinstance(d, c.TicketResolved | c.TicketReopened):
            ref = d.ticket_id
        elif isinstance(d, c.SurveyNps | c.SurveyCsat):
            ref, value = d.ticket_id, d.score
        elif isinstance(d, c.FeedbackReceived):
            ref, text = d.feedback_id, d.channel
        elif isinstance(d, c.FeedbackResponded):
            ref = d.feedback_id
        elif isinstance(d, c.RepJoined | c.RepLeft):
            text = d.team
        return Rec(event.time_us, TYPE_CODES[event.type], event.id, ref, text, value, segment)

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
        merged = prune(merged, newest - self.history_us)
        derived = derive(merged, self.ctx)
        if derived.ignored:
            outcomes = [Outcome("ignored", derived.ignored[rec.id]) if o is APPLIED and rec.id in derived.ignored
                        else o for o, rec in zip(outcomes, records, strict=True)]
        new_blob = blob.encode(derived.facts)
        if old.facts:
            old_blob = old.facts
        elif old.records:  # a state stored before states carried their facts
            old_blob = blob.encode(derive(old.records, self.ctx).facts)
        else:
            old_blob = EMPTY_FACTS
        state = encode_state(CustomerState(records=merged, newest_us=newest, facts=new_blob))
        return Update(outcomes, state, newest, blob.changed(old_blob, new_blob, derived.facts))

    def apply(self, stored: bytes | None, event: Event) -> tuple[Outcome, Update | None]:
        """One event (tests, replays): its outcome and the key's update (``None`` if unprocessable)."""
        try:
            record = self.record(event)
        except ValueError as exc:
            return Outcome("unprocessable", str(exc)), None
        update = self.apply_records(stored, [record])
        return update.outcomes[0], update


EMPTY_FACTS = blob.encode([])
APPLIED = Outcome("applied")
DUPLICATE = Outcome("duplicate")
