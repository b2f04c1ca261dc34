"""``retention-monitor dlq list | show | redrive``: read the dead-letter topic and redrive fixed messages.

The logic is in :mod:`streams.producers.dlq` (pure) and :mod:`streams.producers.redrive` (Kafka, imported
when a command runs: aiokafka costs ~0.3 s, and the parser is built for every command); this module holds the
options, the tables and the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import nullcontext
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.config import LoadedSettings
from retention_monitor.exceptions import KafkaUnreachable, UsageError
from streams.contract.decode import REASONS
from streams.exceptions import PublishError, TopicError
from streams.producers.dlq import Filter, Letter, parse_when, pretty

if TYPE_CHECKING:
    from streams.producers.redrive import Tally

T = TypeVar("T")
DETAIL = 80  # characters of the reason's message in the list


def add_parser(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="the dead-letter topic: list, show, redrive fixed messages to their source",
                         description="Reads topic_dlq (docs/operations.md, Dead-letter topic). Nothing is ever "
                         "removed from it; a redrive republishes messages and remembers which (idempotent).")
    actions = dlq.add_subparsers(dest="dlq_action", required=True, metavar="ACTION")
    d_list = actions.add_parser("list", help="dead letters as a table, with the counts by reason")
    _filters(d_list, "show at most N, oldest first (default: 50; the counts cover every match)", 50)
    d_list.set_defaults(command="dlq list")
    show = actions.add_parser("show", help="one dead letter: headers, reason, the original bytes pretty-printed")
    show.add_argument("position", nargs="?", metavar="PARTITION:OFFSET",
                      help="as dlq list prints it (a bare OFFSET when the topic has one partition)")
    show.add_argument("--id", help="instead: every dead letter of this event id")
    show.add_argument("--json", action="store_true", help="print it as JSON (the bytes also in base64)")
    show.set_defaults(command="dlq show")
    again = actions.add_parser(
        "redrive", help="republish fixed dead letters to their source topic (original bytes, key and headers)",
        description="Sends each matching dead letter's original bytes, key and headers back to its source topic "
        "with the header retention-redrive=PARTITION:OFFSET, and marks it in <topic_dlq>.redriven so a second run "
        "sends nothing. Dead letters these settings would still reject are not sent (too_late is the "
        "worker's call). Run it with the workers' settings, after the fix is deployed.")
    _filters(again, "redrive at most N, each partition in order (run again to continue)", None)
    again.add_argument("--dry-run", action="store_true",
                       help="send nothing; count what would be sent (exit 1 if some would still fail)")
    again.set_defaults(command="dlq redrive")


def _filters(p: argparse.ArgumentParser, limit_help: str, limit: int | None) -> None:
    p.add_argument("--reason", action="append", choices=sorted(REASONS), metavar="REASON",
                   help=f"only this reason; repeat for several ({', '.join(sorted(REASONS))})")
    p.add_argument("--type", action="append", metavar="TYPE", help="only this event type, e.g. order.placed; repeat")
    p.add_argument("--since", metavar="WHEN", help="dead-lettered at or after: RFC 3339 or a duration ago (2h, 7d)")
    p.add_argument("--until", metavar="WHEN", help="dead-lettered before: RFC 3339 or a duration ago")
    p.add_argument("--limit", type=_positive, default=limit, metavar="N", help=limit_help)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number > 0")
    return int(text)


def _filter(args: argparse.Namespace) -> Filter:
    now = datetime.now(UTC)
    since = parse_when("--since", args.since, now) if args.since else None
    until = parse_when("--until", args.until, now) if args.until else None
    return Filter(frozenset(args.reason or ()), frozenset(args.type or ()), since, until)


def _run(work: Callable[[Callable[[int, int], None]], Coroutine[Any, Any, T]], quiet: bool) -> T:
    """Run ``work(progress)`` with a progress bar on stderr; Kafka failures exit 3."""
    bar = None if quiet else Progress(TextColumn("[bold]reading the dead letters"), BarColumn(),
                                      TaskProgressColumn(), TextColumn("{task.completed:,} of {task.total:,}"),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task("read", total=0) if bar is not None else None

    def progress(done: int, total: int) -> None:
        if bar is not None and task is not None:
            bar.update(task, completed=done, total=total)

    # aiokafka logs a failed connection before raising it; the one-line error names the cause (diagnose.explain)
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        with bar or nullcontext():
            return asyncio.run(work(progress))
    except (PublishError, TopicError) as exc:
        raise KafkaUnreachable(str(exc)) from exc


def _json(item: Letter, with_value: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "position": str(item.position), "time": item.time.isoformat(timespec="milliseconds"), "reason": item.reason,
        "message": item.message, "type": item.event_type, "id": item.event_id, "source_topic": item.source_topic,
        "source_partition": item.source_partition, "source_offset": item.source_offset,
        "key": None if item.key is None else item.key.decode(errors="replace"), "redrive_of": item.redrive_of,
    }
    if with_value:
        out["headers"] = {k: v.decode(errors="replace") for k, v in item.headers}
        out["value"] = None if item.value is None else item.value.decode(errors="replace")
        out["value_base64"] = None if item.value is None else base64.b64encode(item.value).decode()
    return out


def _source(item: Letter) -> str:
    return f"{item.source_topic}:{item.source_partition}:{item.source_offset}" if item.source_topic else "?"


def dlq_list(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    from streams.producers.redrive import scan

    settings, chosen = loaded.settings, _filter(args)

    async def work(progress: Callable[[int, int], None]) -> tuple[list[Letter], Counter[str]]:
        shown: list[Letter] = []
        counts: Counter[str] = Counter()
        async for item in scan(settings.kafka, settings.topic_dlq, chosen.since_ms, progress):
            if chosen.matches(item):
                counts[item.reason] += 1
                shown.append(_light(item))
        shown.sort(key=lambda i: (i.timestamp_ms, i.position))
        return shown[:args.limit], counts

    shown, counts = _run(work, args.json)
    if args.json:
        console.print_json(json.dumps({"topic": settings.topic_dlq, "matched": sum(counts.values()),
                                       "shown": len(shown), "counts": dict(counts.most_common()),
                                       "letters": [_json(i, False) for i in shown]}))
        return 0
    table = Table(title=f"dead letters in {settings.topic_dlq}: {sum(counts.values())} matching, showing {len(shown)}",
                  title_justify="left",
                  caption="by reason: " + (", ".join(f"{r} {n}" for r, n in counts.most_common()) or "none"))
    for col in ("position", "dead-lettered", "reason", "type", "id"):
        table.add_column(col, no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("detail", overflow="fold", ratio=1)
    for i in shown:
        table.add_row(str(i.position), i.time.strftime("%Y-%m-%d %H:%M:%S"), i.reason, i.event_type, i.event_id,
                      _source(i), i.message[:DETAIL] + ("…" if len(i.message) > DETAIL else ""))
    console.print(table)
    return 0


def _light(item: Letter) -> Letter:
    """Without its bytes: a list holds many."""
    return replace(item, value=None)


def dlq_show(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    from streams.producers.redrive import one, scan

    settings = loaded.settings
    if (args.position is None) == (args.id is None):
        raise UsageError("dlq show: give a PARTITION:OFFSET or --id ID (one of them)")

    async def work(progress: Callable[[int, int], None]) -> list[Letter]:
        if args.position is not None:
            return [await one(settings.kafka, settings.topic_dlq, args.position)]
        return [i async for i in _with_id(scan(settings.kafka, settings.topic_dlq, None, progress), args.id)]

    found = _run(work, args.json or args.position is not None)
    if not found:
        raise UsageError(f"no dead letter of event id {args.id!r} in {settings.topic_dlq}")
    if args.json:
        console.print_json(json.dumps({"letters": [_json(i, True) for i in found]}))
        return 0
    for item in found:
        console.print(_details(item))
        console.print(pretty(item.value), markup=False, highlight=False)
    return 0


async def _with_id(items: AsyncIterator[Letter], ident: str) -> AsyncIterator[Letter]:
    async for item in items:
        if item.event_id == ident:
            yield item


def _details(item: Letter) -> Table:
    table = Table(title=f"dead letter {item.position}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in (("dead-lettered", item.time.isoformat(timespec="milliseconds")), ("reason", item.reason),
                        ("message", item.message), ("source", _source(item)), ("event type", item.event_type),
                        ("event id", item.event_id), ("key", "" if item.key is None else repr(item.key)[2:-1]),
                        ("redrive of", item.redrive_of)):
        table.add_row(name, value)
    for name, data in item.headers:
        table.add_row(f"header {name}", data.decode(errors="backslashreplace"))
    return table


def dlq_redrive(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    from streams.producers.redrive import redrive

    settings, chosen = loaded.settings, _filter(args)
    tally = _run(lambda progress: redrive(settings, chosen, args.limit, args.dry_run, progress), args.json)
    if args.json:
        out = asdict(tally)
        out["failing"] = dict(tally.failing.most_common())
        out["examples"] = [dict(zip(("position", "reason", "message"), e, strict=True)) for e in tally.examples]
        console.print_json(json.dumps(out))
    else:
        console.print(_tally_table(tally, settings.topic_dlq))
    return 1 if args.dry_run and tally.failing else 0


def _tally_table(tally: Tally, topic: str) -> Table:
    sent = "would be redriven" if tally.dry_run else "redriven"
    table = Table(title=f"{'dry run of a redrive (nothing sent)' if tally.dry_run else 'redrive'} from {topic}",
                  title_justify="left", caption="stopped at --limit; run again to continue" if tally.stopped_at_limit
                  else None)
    for col, justify in (("", "left"), ("count", "right"), ("first examples", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    table.add_row("matching dead letters", str(tally.matched), "")
    table.add_row(sent, str(tally.redriven), "to their source topics, with header retention-redrive")
    table.add_row("skipped: redriven before", str(tally.already), "marked in the redrive marker topic")
    for reason, n in tally.failing.most_common():
        shown = "\n".join(f"{pos}: {msg[:DETAIL]}" for pos, r, msg in tally.examples if r == reason)
        table.add_row(f"skipped: still failing ({reason})", str(n), shown)
    return table
