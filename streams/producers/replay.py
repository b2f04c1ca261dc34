"""Backfill: CSV export rows (through a column mapping) and JSONL lines into CloudEvents, no Kafka here.

:class:`Source` yields one :class:`Row` per CSV record or JSONL line: the events to send and the
problems found. Every event is judged by the worker's own :func:`streams.contract.decode.decode` and by its
per-customer, per-stream lateness rule simulated over the file in order, so a dry run predicts what the worker
would reject. Event ids are deterministic (an id column, else a hash of the file name and the row),
so a row sent twice is counted once: the worker dedupes by event id.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from core.errors import ConfigError
from core.settings import Settings
from core.slices import FactSettings
from metrics.lateness import stream_of
from metrics.records import TYPE_CODES
from streams.apply.processor import lateness_rule
from streams.contract.decode import Event, Rejection, decode
from streams.contract.events import partition_key
from streams.producers.replay_mapping import (
    ENVELOPE,
    FIELDS,
    JSONL_SUFFIXES,
    REFS,
    BadValue,
    EventMapping,
    Mapping,
    parse_number,
    parse_time,
    rfc3339,
)
from streams.producers.simulate import topic_for


@dataclass(frozen=True, slots=True)
class Built:
    """A valid event ready to send: topic (routed by type), key (the customer) and bytes."""

    topic: str
    key: bytes | None
    value: bytes
    event: Event


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    reason: str
    message: str


@dataclass(slots=True)
class Row:
    """One CSV record or JSONL line (``line``: where it starts) with its events and problems."""

    line: int
    digest: bytes
    events: list[Built] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: int = 0  # optional events without a time
    duplicates: int = 0  # events whose id came earlier in the file: the worker counts them once


def built(settings: Settings, value: bytes, currencies: frozenset[str]) -> Built:
    """Route and key a valid event like ``publish`` does; raises :class:`BadValue` with decode's reason."""
    decoded = decode(value, currencies, settings.max_message_bytes)
    if isinstance(decoded, Rejection):
        raise BadValue(decoded.reason, decoded.message)
    owner = getattr(decoded.data, "customer_id", None) or getattr(decoded.data, "rep_id", None)
    return Built(topic_for(settings.topics, decoded.type), owner.encode() if owner else None, value, decoded)


class Converter:
    """Turns CSV rows into events; the mapping is checked against ``header`` (and constants) up front."""

    def __init__(self, mapping: Mapping, settings: Settings, header: list[str], seed: str, where: str) -> None:
        self.mapping, self.settings, self.seed, self.width = mapping, settings, mapping.id_seed or seed, len(header)
        self.currencies = frozenset(settings.rates)
        self.index = {name: i for i, name in enumerate(header)}
        self.types = [e.type for e in mapping.events]
        self.occurrences: dict[bytes, int] = {}
        for em in mapping.events:
            for target, column in em.columns.items():
                if header.count(column) != 1:
                    problem = "is not in the header" if column not in header else "appears twice in the header"
                    raise ConfigError(f"{where}: column {column!r} (for {em.type} {target}) {problem}; "
                                      f"columns: {', '.join(header)}")
            for target, text in em.consts.items():
                try:
                    value = self._convert(em, target, text, ".")
                except BadValue as bad:
                    raise ConfigError(f"{where}: {em.type} const {target}={text!r}: {bad}") from bad
                if target == "currency" and value not in self.currencies:
                    allowed = ", ".join(sorted(self.currencies))
                    raise ConfigError(f"{where}: const currency={text!r}: must be one of {allowed}")

    def _convert(self, em: EventMapping, target: str, text: str, decimal: str) -> Any:
        kind = "text" if target in ENVELOPE else FIELDS[em.type].get(target, ("text",))[0]
        if target == "time":
            return rfc3339(parse_time(text, em.time_format, self.settings.tz))
        if kind == "number":
            return parse_number(text, decimal)
        if kind == "integer" and not re.fullmatch(r"[+-]?\d{1,18}", text):
            raise BadValue("wrong_type", f"{text!r} is not a whole number")
        return int(text) if kind == "integer" else text

    def row(self, line: int, cells: list[str]) -> Row:
        row = Row(line, hashlib.blake2b("\x1f".join(cells).encode(), digest_size=16).digest())
        if len(cells) != self.width:
            row.problems.append(Problem(line, "bad_row", f"{len(cells)} cells, the header has {self.width}"))
            return row
        for i, em in enumerate(self.mapping.events):
            try:
                event = self._event(i, em, [c.strip() for c in cells])
            except BadValue as bad:
                row.problems.append(Problem(line, bad.reason, f"{em.type}: {bad}"))
                continue
            row.skipped += event is None
            row.events += [event] if event else []
        return row

    def _event(self, i: int, em: EventMapping, cells: list[str]) -> Built | None:
        if em.optional and "time" in em.columns and not cells[self.index[em.columns["time"]]]:
            return None
        env: dict[str, Any] = {}
        data: dict[str, Any] = {}
        fields = FIELDS[em.type]
        for target, source in {**em.columns, **em.consts}.items():
            const = target in em.consts
            cell = source if const else cells[self.index[source]]
            text = cell if const else em.values.get(target, {}).get(cell, cell)
            if not text:
                if target in ("id", "time") or fields.get(target, ("", False))[1]:
                    raise BadValue("missing_field", f"column {source!r} ({target}) is empty")
                continue
            value = self._convert(em, target, text, "." if const else self.mapping.decimal)
            name, _, dim = target.partition(".")
            if target in ENVELOPE:
                env[target] = value
            elif dim:
                data.setdefault(name, {})[dim] = value
            else:
                data[target] = value
        tag = f"#{i}" if self.types.count(em.type) > 1 else ""
        event_id = f"{em.type}{tag}:{env['id']}" if "id" in env else ""
        if not event_id or len(event_id) > 128:
            # Only mapped cells: a column added to a later export keeps the ids. Two identical rows (equal
            # orders on one day) stay two events: the occurrence of that content is hashed too.
            content = "\x1f".join([self.seed, str(i), *(cells[self.index[c]] for c in em.columns.values())])
            digest = hashlib.blake2b(content.encode(), digest_size=16).digest()
            nth = self.occurrences[digest] = self.occurrences.get(digest, -1) + 1
            event_id = f"{em.type}{tag}:{hashlib.blake2b(digest + str(nth).encode(), digest_size=16).hexdigest()}"
        for ref in REFS:
            if fields.get(ref, ("", False))[1] and ref not in data:
                data[ref] = event_id
        doc = {"specversion": "1.0", "id": event_id, "source": env.get("source", "replay"), "type": em.type,
               "time": env["time"], "data": data}
        return built(self.settings, msgspec.json.encode(doc), self.currencies)


class LatenessCheck:
    """The worker's dedupe and lateness rule (:mod:`metrics.lateness`), simulated over the events in file order."""

    def __init__(self, facts: FactSettings) -> None:
        self.rule = lateness_rule(facts)
        self.newest: dict[str, int] = {}
        self.stream_newest: dict[tuple[str, str], int] = {}
        self.seen: set[tuple[str, str]] = set()

    def judge(self, event: Event) -> str | None:
        """``duplicate``, a ``too_late`` message, or None when the worker would apply the event."""
        key = partition_key(event.data)
        if (key, event.id) in self.seen:
            return "duplicate"
        t = TYPE_CODES[event.type]
        stream = (key, stream_of(t))
        newest = self.newest.get(key)
        late = self.rule.judge(event.time_us, t, newest, self.stream_newest.get(stream))
        if late is not None:
            return f"{late.behind_us / 8.64e10:.2f} days behind {late.what} of {key!r} before it, {late.limit}"
        self.seen.add((key, event.id))
        self.newest[key] = event.time_us if newest is None else max(newest, event.time_us)
        self.stream_newest[stream] = max(self.stream_newest.get(stream, event.time_us), event.time_us)
        return None


class Source:
    """The rows of a CSV export (with a mapping) or a JSONL file; a CSV header is checked on opening."""

    def __init__(self, path: Path, settings: Settings, mapping: Mapping | None) -> None:
        self.path, self.settings, self.mapping = path, settings, mapping
        if not path.is_file():
            raise ConfigError(f"no such file: {path}")
        if (mapping is None) != (path.suffix.lower() in JSONL_SUFFIXES):
            raise ConfigError(f"{path}: a CSV export needs a mapping (--mapping FILE.toml, or --type and --map), "
                              f"a JSON Lines file ({', '.join(JSONL_SUFFIXES)}) has none")
        self.converter: Converter | None = None
        if mapping is not None:
            header = next((cells for _, cells in self._records(mapping)), None)
            if header is None:
                raise ConfigError(f"{path}: empty; a CSV export starts with a header row")
            names = [h.replace("\ufeff", "").strip() for h in header]  # a BOM read with encoding = "utf-8"
            self.converter = Converter(mapping, settings, names, path.name, str(path))

    def _records(self, mapping: Mapping) -> Iterator[tuple[int, list[str]]]:
        with self.path.open(encoding=mapping.encoding, newline="") as fh:
            reader, start = csv.reader(fh, delimiter=mapping.delimiter), 1
            try:
                for cells in reader:
                    if any(c.strip() for c in cells):
                        yield start, cells
                    start = reader.line_num + 1
            except csv.Error as exc:
                raise ConfigError(f"{self.path}: line {start} cannot be read ({exc}); check the mapping's "
                                  f"delimiter={mapping.delimiter!r}") from exc
            except UnicodeDecodeError as exc:  # decoded in blocks: the line is unknown
                raise ConfigError(f"{self.path}: not {mapping.encoding} text ({exc.reason}, byte "
                                  f"{exc.object[exc.start:exc.end]!r}); set encoding, e.g. cp1252 or latin-1") from exc

    def _lines(self) -> Iterator[Row]:
        currencies = frozenset(self.settings.rates)
        with self.path.open("rb") as fh:
            for line, raw in enumerate(fh, 1):
                if not (value := raw.rstrip(b"\r\n")).strip():
                    continue
                row = Row(line, hashlib.blake2b(value, digest_size=16).digest())
                try:
                    row.events.append(built(self.settings, value, currencies))
                except BadValue as bad:
                    row.problems.append(Problem(line, bad.reason, str(bad)))
                yield row

    def __iter__(self) -> Iterator[Row]:
        rows = self._lines()
        if self.mapping is not None and self.converter is not None:
            records = self._records(self.mapping)
            next(records, None)  # the header
            rows = (self.converter.row(line, cells) for line, cells in records)
        lateness = LatenessCheck(self.settings.facts)
        for row in rows:
            for b in row.events:
                verdict = lateness.judge(b.event)
                row.duplicates += verdict == "duplicate"
                if verdict not in (None, "duplicate"):
                    row.problems.append(Problem(row.line, "too_late", f"{b.event.id}: {verdict}"))
            yield row
