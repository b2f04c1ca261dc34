"""``retention-monitor replay FILE``: backfill history from a shop/help-desk CSV export or a JSONL file.

A checkpoint records how many rows Kafka has acknowledged (written only after the producer's acks),
and the next run of the same command skips them. Rows sent but not yet checkpointed when a run dies
are sent again; their ids are deterministic, so the worker counts them once.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.config import LoadedSettings
from core.errors import ConfigError
from core.settings import Settings
from streams.exceptions import PublishError
from streams.producers.replay import Problem, Row, Source
from streams.producers.replay_mapping import Mapping, parse_mapping

EXAMPLES = 3  # per reason: enough to see a pattern, few enough to read
_CHUNK = 2000  # deliveries awaited together before the checkpoint advances
_ACK_EVERY_S = 0.5  # and at least this often, so an interrupted run re-sends little


def _pairs(items: list[str] | None, option: str, shape: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        target, eq, value = item.partition("=")
        if not eq or not target.strip() or not value.strip():
            raise ConfigError(f"{option} {item!r}: expected {shape}, e.g. {option} amount=Betrag")
        pairs[target.strip()] = value.strip()
    return pairs


def mapping_from_args(args: argparse.Namespace) -> Mapping | None:
    """The TOML mapping (``--mapping``) with the inline options on top; None for a JSONL file."""
    doc: dict[str, Any] = {}
    where = "replay options"
    if args.mapping:
        where = args.mapping
        try:
            doc = tomllib.loads(Path(args.mapping).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--mapping {args.mapping}: cannot read it ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{args.mapping}: not valid TOML ({exc})") from exc
    columns, consts = _pairs(args.map, "--map", "FIELD=COLUMN"), _pairs(args.const, "--const", "FIELD=VALUE")
    if args.type or columns or consts:
        events = doc.get("event")
        if isinstance(events, list) and len(events) != 1:
            raise ConfigError(f"{where}: --type, --map and --const need a mapping with one event, not {len(events)}")
        event = events[0] if isinstance(events, list) and isinstance(events[0], dict) else doc
        event["type"] = args.type or event.get("type")
        for key, extra in (("map", columns), ("const", consts)):
            table = {k: v for k, v in event.get(key, {}).items() if k not in columns and k not in consts}
            event[key] = {**table, **extra}  # an option replaces the file's column or constant for that target
    options = {"delimiter": args.delimiter, "decimal": args.decimal, "encoding": args.encoding,
               "time_format": args.time_format, "id_seed": args.id_seed}
    doc.update({k: v for k, v in options.items() if v is not None})
    if args.time_format is not None:
        for event in doc.get("event", []):
            event.pop("time_format", None)
    return parse_mapping(doc, where) if doc else None


@dataclass
class Checkpoint:
    """How far a replay of one file into one monitor got: ``rows`` acknowledged from the start."""

    path: Path
    fingerprint: str  # mapping and target: another mapping or other topics is another replay
    rows: int = 0
    prefix: str = ""  # hash of those rows: a file changed before the checkpoint is not resumed blindly
    complete: bool = False

    @staticmethod
    def where(settings: Settings, file: Path) -> Path:
        tag = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
        return settings.worker_dir / "replays" / f"{file.name}.{tag}.json"

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> Checkpoint:
        if not path.exists():
            return cls(path, fingerprint)
        try:
            stored = json.loads(path.read_text())
            return cls(path, **{k: stored[k] for k in ("fingerprint", "rows", "prefix", "complete")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"checkpoint {path} is unreadable ({exc}); --restart replays from the start") from exc

    def save(self) -> None:
        # Written aside and renamed: a crash mid-write leaves the previous checkpoint, never half of one.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in asdict(self).items() if k != "path"}))
        os.replace(tmp, self.path)


@dataclass
class Tally:
    """What a run did, for the summary: rows of this run only (resumed rows were counted before)."""

    file: str
    dry_run: bool
    resumed_after: int = 0
    rows: int = 0
    events: int = 0
    published: int = 0
    skipped: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[Problem] = field(default_factory=list)
    complete: bool = False
    checkpoint: str = ""

    def add(self, row: Row) -> None:
        self.rows += 1
        self.events += len(row.events)
        self.skipped += row.skipped
        self.duplicates += row.duplicates
        for p in row.problems:
            self.rejected[p.reason] += 1
            if self.rejected[p.reason] <= EXAMPLES:
                self.examples.append(p)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["examples"] = [asdict(p) for p in self.examples]
        out["rejected"] = dict(sorted(self.rejected.items()))
        return out

    def table(self) -> Table:
        mode = "dry run (nothing published)" if self.dry_run else "replay"
        table = Table(title=f"{mode} of {self.file}", title_justify="left")
        for col, justify in (("", "left"), ("count", "right"), ("first examples", "left")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        if self.resumed_after:
            table.add_row("resumed after rows", str(self.resumed_after), "acknowledged by an earlier run")
        table.add_row("rows read", str(self.rows), "")
        table.add_row("valid events", str(self.events), "routed by type, keyed by customer")
        if not self.dry_run:
            table.add_row("published", str(self.published), "acknowledged by Kafka")
        if self.skipped:
            table.add_row("optional events without a time", str(self.skipped), "not sent")
        if self.duplicates:
            table.add_row("repeated event ids", str(self.duplicates), "sent; the worker counts each id once")
        for reason, n in sorted(self.rejected.items()):
            note = " (predicted; sent: the worker decides)" if reason == "too_late" and not self.dry_run else ""
            shown = "\n".join(f"line {p.line}: {p.message}" for p in self.examples if p.reason == reason)
            table.add_row(f"rejected: {reason}{note}", str(n), shown)
        return table


def _progress(title: str, total: int) -> Progress:
    return Progress(TextColumn(f"[bold]{title}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("line {task.completed:,} of {task.total:,}"), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)  # fmt: skip


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) or 1


def _resume(rows: Iterator[Row], cp: Checkpoint, limit: int | None, hasher: Any) -> Iterator[Row]:
    """Skip the acknowledged rows (checking they are unchanged), then yield at most ``limit`` rows;
    ``cp.complete`` is set once the file is exhausted."""
    done = 0

    def check_prefix() -> None:
        if cp.rows and hasher.hexdigest() != cp.prefix:
            raise ConfigError(f"{cp.path}: the file changed in its first {cp.rows} rows since that replay; "
                              "--restart replays it from the start (ids are deterministic)")

    for row in rows:
        if done == cp.rows:
            check_prefix()
        if limit is not None and done >= cp.rows + limit:
            return
        hasher.update(row.digest)
        done += 1
        if done > cp.rows:
            yield row
    if done < cp.rows:
        raise ConfigError(f"{cp.path}: the file has {done} rows, fewer than the {cp.rows} already replayed; "
                          "--restart replays it from the start")
    if done == cp.rows:
        check_prefix()
    cp.complete = True


async def _publish(settings: Settings, rows: Iterator[Row], rate: float | None,
                   on_row: Callable[[Row], None], on_ack: Callable[[int], None]) -> None:  # fmt: skip
    # Kafka only when publishing: the CLI imports this module for every command, a dry run needs no broker.
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from streams.kafka.clients import client_options  # noqa: PLC0415
    from streams.producers.publish import TokenBucket, start_producer  # noqa: PLC0415

    # acks=all and idempotence: an acknowledged row is durable and was written once per send.
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024,
                                request_timeout_ms=15_000, max_request_size=settings.max_message_bytes + 65_536,
                                **client_options(settings.kafka))  # fmt: skip
    await start_producer(settings.kafka, producer)
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(rate) if rate else None
    pending: list[asyncio.Future[Any]] = []
    last = loop.time()
    try:
        for row in rows:
            for built in row.events:
                if bucket is not None:
                    await bucket.take()
                pending.append(await producer.send(built.topic, built.value, key=built.key))
            on_row(row)
            # Only whole rows are acknowledged: every event of the rows up to here is confirmed.
            if len(pending) >= _CHUNK or loop.time() - last >= _ACK_EVERY_S:
                on_ack(len(await asyncio.gather(*pending)))
                pending.clear()
                last = loop.time()
        on_ack(len(await asyncio.gather(*pending)))
    except KafkaError as exc:
        raise PublishError(f"publishing to Kafka at {settings.kafka_bootstrap} failed: {exc!r}") from exc
    finally:
        await producer.stop()


def replay(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    settings, file = loaded.settings, Path(args.file)
    mapping = mapping_from_args(args)
    source = Source(file, settings, mapping)
    target = [settings.kafka_bootstrap, *settings.topics.inputs, mapping.fingerprint() if mapping else "jsonl"]
    cp_path = Path(args.checkpoint) if args.checkpoint else Checkpoint.where(settings, file)
    fingerprint = hashlib.sha256(json.dumps(target).encode()).hexdigest()[:16]
    cp = Checkpoint(cp_path, fingerprint) if args.restart or args.dry_run else Checkpoint.load(cp_path, fingerprint)
    if cp.fingerprint != fingerprint:
        raise ConfigError(f"checkpoint {cp_path} is of a replay with another mapping or other topics; "
                          "--restart replays from the start (ids are deterministic: nothing counts twice)")
    tally = Tally(str(file), args.dry_run, cp.rows, checkpoint="" if args.dry_run else str(cp_path))
    cp.complete = False
    hasher = hashlib.sha256()
    rows = _resume(iter(source), cp, args.limit, hasher)
    lines = _count_lines(file)
    bar = None if args.json else _progress("checking" if args.dry_run else "replaying", lines)
    task = bar.add_task("replay", total=lines) if bar is not None else None

    def on_row(row: Row) -> None:
        tally.add(row)
        if bar is not None and task is not None:
            bar.update(task, completed=row.line)

    def on_ack(n: int) -> None:
        tally.published += n
        cp.rows, cp.prefix = tally.resumed_after + tally.rows, hasher.hexdigest()
        cp.save()

    try:
        with bar or nullcontext():
            if args.dry_run:
                for row in rows:
                    on_row(row)
            else:
                asyncio.run(_publish(settings, rows, args.rate, on_row, on_ack))
    except KeyboardInterrupt:
        if not args.dry_run:
            Console(stderr=True).print(f"interrupted: {cp.rows} rows acknowledged (checkpoint {cp_path}); "
                                       "run the same command again to resume")
        raise
    tally.complete = cp.complete
    _report(tally, args.json, console)
    return 1 if args.dry_run and tally.rejected else 0


def _report(tally: Tally, as_json: bool, console: Console) -> None:
    if as_json:
        console.print_json(json.dumps(tally.as_json()))
        return
    console.print(tally.table())
    if tally.complete and not tally.rows and tally.resumed_after:
        console.print("nothing new: every row was replayed before (--restart sends them again; "
                      "ids are deterministic, so nothing counts twice)")
    elif not tally.complete:
        console.print("stopped at --limit; run the same command again to continue")
