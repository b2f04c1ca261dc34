"""The bench's event file: simulated traffic of every domain, generated once and cached in bench/out/.

    .venv/bin/python -m bench.events --customers 1000000 --events 8000000

A compact binary file of ``(topic kind, key, value)`` records (``<BHI`` header, then key and value
bytes) plus a JSON sidecar with what it holds. The first ``events`` records are the backlog every
system consumes; the ``tail`` after them feeds the paced latency slices. The steady scenario and a
simulated rate fixed by ``events`` alone make the sequence prefix-stable: a longer tail never
changes the backlog, so a cached file is reused whenever its tail is long enough.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bench.cli import OneLineParser, int_range
from bench.procs import ROOT
from core.settings import Settings
from streams.producers.simulate import Simulator

OUT = ROOT / "bench" / "out"
KINDS = ("lifecycle", "support", "feedback", "team")  # topic kinds, as in Settings.topics.inputs
START_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
SPAN_DAYS = 180  # the backlog covers half a year of event time, whatever its size
MAX_CUSTOMERS = 1_000_000
_HEAD = struct.Struct("<BHI")  # topic kind, key length, value length


class _TypeOnly(msgspec.Struct):
    type: str


_TYPE = msgspec.json.Decoder(_TypeOnly)


@dataclass(frozen=True)
class EventFile:
    """A generated event file and what its backlog (the first ``events`` records) holds."""

    path: str
    customers: int  # the simulator's target population
    events: int
    tail: int
    seed: int
    bytes: int  # size of the .bin file
    backlog_bytes: int  # where the tail starts in it
    mean_value_bytes: float
    distinct_customers: int  # customers with at least one event in the backlog
    type_mix: dict[str, int]
    topic_mix: dict[str, int]
    tail_new_customers: list[int]  # tail positions where a customer not seen before appears

    @property
    def total(self) -> int:
        return self.events + self.tail

    def customers_after(self, tail_events: int) -> int:
        """Customers with events once the backlog and the first ``tail_events`` of the tail are consumed."""
        return self.distinct_customers + bisect.bisect_left(self.tail_new_customers, tail_events)


def cache_name(customers: int, events: int, seed: int) -> str:
    return f"events-c{customers}-e{events}-s{seed}"


def ensure_events(customers: int, events: int, tail: int = 0, seed: int = 7, *, console: Console | None = None,
                  out: Path = OUT, force: bool = False) -> EventFile:  # fmt: skip
    """The cached file for these parameters if its tail is long enough, else a freshly generated one."""
    console = console or Console(stderr=True)
    meta_path = out / f"{cache_name(customers, events, seed)}.json"
    if not force and meta_path.exists():
        try:
            cached = EventFile(**json.loads(meta_path.read_text()))
        except (TypeError, json.JSONDecodeError):  # written by an older harness: generate again
            return _generate(customers, events, tail, seed, console=console, out=out)
        bin_path = Path(cached.path)
        if cached.tail >= tail and bin_path.exists() and bin_path.stat().st_size == cached.bytes:
            console.print(f"[dim]event file cached: {bin_path} ({cached.total:,} events)[/]")
            return cached
    return _generate(customers, events, tail, seed, console=console, out=out)


def _generate(customers: int, events: int, tail: int, seed: int, *, console: Console, out: Path) -> EventFile:
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    kind_of = {topic: i for i, topic in enumerate(settings.topics.inputs)}
    simulator = Simulator(settings.facts, settings.topics, seed=seed, scenario="steady", customers=customers)
    rate = events / (SPAN_DAYS * 86_400)
    bin_path = out / f"{cache_name(customers, events, seed)}.bin"
    tmp = bin_path.with_suffix(".tmp")
    types: Counter[str] = Counter()
    topics: Counter[str] = Counter()
    owners: set[bytes] = set()
    tail_new: list[int] = []
    value_bytes = backlog_bytes = 0
    columns = (TextColumn("[bold]simulating events"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with tmp.open("wb") as fh, Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("simulate", total=events + tail)
        stream = simulator.events(start_us=START_US, count=events + tail, rate=rate)
        for n, (topic, key, value) in enumerate(stream):
            kind = kind_of[topic]
            fh.write(_HEAD.pack(kind, len(key), len(value)))
            fh.write(key)
            fh.write(value)
            if n == events - 1:
                backlog_bytes = fh.tell()
            if n < events:  # the mix reported is the backlog's: that is what throughput is measured on
                types[_TYPE.decode(value).type] += 1
                topics[KINDS[kind]] += 1
                value_bytes += len(value)
                if kind != KINDS.index("team"):
                    owners.add(key)
            elif kind != KINDS.index("team") and key not in owners:
                owners.add(key)
                tail_new.append(n - events)
            if n % 20_000 == 0:
                progress.update(task, completed=n)
    os.replace(tmp, bin_path)
    result = EventFile(
        path=str(bin_path), customers=customers, events=events, tail=tail, seed=seed,
        bytes=bin_path.stat().st_size, backlog_bytes=backlog_bytes, mean_value_bytes=value_bytes / max(1, events),
        distinct_customers=len(owners) - len(tail_new), type_mix=dict(types.most_common()),
        topic_mix=dict(topics.most_common()), tail_new_customers=tail_new,
    )  # fmt: skip
    (out / f"{cache_name(customers, events, seed)}.json").write_text(json.dumps(asdict(result)))
    return result


def read_events(file: EventFile, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
    """Records ``[start, stop)`` of the file as ``(topic kind index, key, value)``."""
    stop = file.total if stop is None else min(stop, file.total)
    with open(file.path, "rb", buffering=1 << 20) as fh:
        skip = start
        if start >= file.events:  # a latency slice: jump over the backlog at once
            fh.seek(file.backlog_bytes)
            skip = start - file.events
        for _ in range(skip):  # skipping costs a header read and a seek per record, no copying
            kind, klen, vlen = _HEAD.unpack(fh.read(_HEAD.size))
            fh.seek(klen + vlen, os.SEEK_CUR)
        for _ in range(start, stop):
            kind, klen, vlen = _HEAD.unpack(fh.read(_HEAD.size))
            yield kind, fh.read(klen), fh.read(vlen)


def describe(file: EventFile, console: Console) -> None:
    """Print the backlog's size, population and mix of event types."""
    console.print(
        f"{file.events:,} events (+{file.tail:,} for latency slices), {file.distinct_customers:,} customers "
        f"with events (target population {file.customers:,}), mean value {file.mean_value_bytes:.0f} bytes, "
        f"{SPAN_DAYS} days of event time"
    )
    table = Table(title="type mix of the backlog", title_justify="left")
    table.add_column("type")
    table.add_column("events", justify="right")
    table.add_column("share", justify="right")
    for name, count in file.type_mix.items():
        table.add_row(name, f"{count:,}", f"{100 * count / file.events:.1f} %")
    console.print(table)


def main() -> None:
    parser = OneLineParser(prog="bench.events", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--customers", type=int_range(1, MAX_CUSTOMERS), default=20_000)
    parser.add_argument("--events", type=int_range(1, 100_000_000), default=200_000)
    parser.add_argument("--tail", type=int_range(0, 100_000_000), default=0,
                        help="extra events after the backlog for paced latency slices")  # fmt: skip
    parser.add_argument("--seed", type=int_range(0, 2**31), default=7)
    parser.add_argument("--force", action="store_true", help="regenerate even when a cached file fits")
    args = parser.parse_args()
    console = Console()
    file = ensure_events(args.customers, args.events, args.tail, args.seed, console=console, force=args.force)
    describe(file, console)


if __name__ == "__main__":
    main()
