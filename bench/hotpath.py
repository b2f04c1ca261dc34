"""CPU per event of each step of a worker's hot path, without Kafka: the compiled steps next to their
Python references (the code they replaced, kept in tests/), on one simulated event file.

    .venv/bin/python -m bench.hotpath [--customers 20000] [--events 200000] [--batch 8] [--window 0] [--repeat 3]
                                      [--json F]

Steps: route (validation, record and pack: the compiled fast path against msgspec and the Python
recorder), apply (one key's events in chunks of up to ``--batch``, as a fetch groups them; with
``--window``, only events that close together, as in a worker's fetch: with many customers about one
a key), change entry, KPI store update (what the follower does with the entries: its compiled fast
path against every entry through ``apply_entry``). CPU time (``process_time``), best of ``--repeat``;
the compiled and the reference apply step must write the same bytes, and the two followers' stores
hold the same (checked).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import retention_native
from rich.console import Console
from rich.table import Table

from core.settings import Settings
from metrics.records import Rec
from metrics.store import KpiStore
from streams.apply.processor import Processor, Update, change_entry
from streams.contract.decode import Event, decode
from streams.contract.events import partition_key
from streams.follow.follower import BATCH as FOLLOW_BATCH
from streams.follow.follower import apply_entries, apply_entry
from streams.memory import MemoryLog, Message, Partition
from streams.producers.simulate import Simulator
from streams.route.dead_letters import DeadLetters
from streams.route.records import Recorder
from streams.route.stage import PACK_BYTES, RouteStage
from streams.wire import partition_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from apply_reference.processor import ReferenceProcessor
from route_reference.stage import reference_route

R = TypeVar("R")
Chunks = list[tuple[bytes, list[Rec]]]


def timed(step: Callable[[], R], repeat: int) -> tuple[float, R]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        began = time.process_time()
        result = step()
        best = min(best, time.process_time() - began)
    assert result is not None
    return best, result


def chunks_of(keys: list[bytes], recs: list[Rec], batch: int, window: int = 0) -> Chunks:
    """Each key's events in runs of up to ``batch``, in the order of their first event; with a
    ``window``, a run holds only events of the same ``window`` consecutive ones (as a fetch's packs do)."""
    chunks: Chunks = []
    open_: dict[bytes, list[Rec]] = {}
    for i, (key, rec) in enumerate(zip(keys, recs, strict=True)):
        if window and i % window == 0:
            open_.clear()
        chunk = open_.get(key)
        if chunk is None or len(chunk) >= batch:
            chunk = open_[key] = []
            chunks.append((key, chunk))
        chunk.append(rec)
    return chunks


def apply_steps(
    processor: Any, chunks: Chunks, settings: Settings, n: int, repeat: int, *, compiled: bool
) -> tuple[dict[str, float], list[bytes], tuple[int, ...]]:
    def apply() -> list[tuple[bytes, Update]]:
        table: dict[bytes, bytes] = {}
        out = []
        for key, batch in chunks:
            update = processor.apply_records(table.get(key), batch)
            if update.state is not None:
                table[key] = update.state
                out.append((key, update))
        return out

    def entries() -> list[tuple[bytes, bytes]]:
        return [(key, change_entry(update, 0)) for key, update in updates]

    def follow() -> KpiStore:
        store = KpiStore(processor.ctx)
        for p, records in fetched:
            if compiled:
                apply_entries(store, p, records)
            else:
                for record in records:
                    apply_entry(store, p, record.key, record.value)
        store.index.flush()  # buffered writes reach the day columns on the next read: count that too
        return store

    t_apply, updates = timed(apply, repeat)
    t_entry, written = timed(entries, repeat)
    fetched = fetches(written, settings.partitions)
    t_follow, store = timed(follow, repeat)
    us = {"apply": t_apply / n * 1e6, "change entry": t_entry / n * 1e6, "KPI store update": t_follow / n * 1e6}
    held = (store.customers(), store.keys(), store.index.facts, store.updates)
    return us, [entry for _, entry in written], held


def fetches(written: list[tuple[bytes, bytes]], partitions: int) -> list[tuple[int, list[Message]]]:
    """The changelog entries as the follower fetches them: per partition, in batches of ``FOLLOW_BATCH``."""
    by_partition: dict[int, list[Message]] = {}
    for offset, (key, entry) in enumerate(written):
        by_partition.setdefault(partition_of(key, partitions), []).append(Message(key, entry, offset, 0))
    return [(p, records[i:i + FOLLOW_BATCH]) for p, records in by_partition.items()
            for i in range(0, len(records), FOLLOW_BATCH)]  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    sim = Simulator(settings.facts, settings.topics, seed=11, scenario="steady", customers=args.customers)
    messages = [v for _, _, v in sim.events(start_us=1_735_689_600_000_000, count=args.events,
                                             rate=args.events / (365 * 86_400))]
    currencies = frozenset(settings.rates)
    events = [e for e in (decode(v, currencies) for v in messages) if isinstance(e, Event)]
    compiled = Processor(settings.facts)
    recs = [compiled.recorder.record(e) for e in events]
    n = len(recs)
    chunks = chunks_of([partition_key(e.data).encode() for e in events], recs, args.batch, args.window)
    fast, fast_entries, fast_held = apply_steps(compiled, chunks, settings, n, args.repeat, compiled=True)
    slow, slow_entries, slow_held = apply_steps(ReferenceProcessor(settings.facts), chunks, settings, n, args.repeat,
                                                compiled=False)  # fmt: skip
    if fast_entries != slow_entries:
        raise SystemExit("hotpath: the compiled and the reference apply step wrote different changelog entries")
    if fast_held != slow_held:
        raise SystemExit(f"hotpath: the compiled follower's store holds {fast_held}, the reference's {slow_held}")
    fast_route, slow_route = route_steps(messages, settings, args.repeat)
    return {"events": n, "customers": args.customers, "chunks": len(chunks), "batch": args.batch, "window": args.window,
            "compiled": {"route": fast_route} | fast, "reference": {"route": slow_route} | slow}


def route_steps(messages: list[bytes], settings: Settings, repeat: int) -> tuple[float, float]:
    """CPU µs per event of the route stage's compiled fast path and of its Python reference (every message
    through msgspec, recorded, packed) over ``messages`` as one fetch; both must cut the same packs."""
    stage = RouteStage(recorder=Recorder(settings.currency, settings.rates), producer=MemoryLog(),
                       rekeyed=settings.topics.rekeyed, partitions=settings.partitions,
                       dead_letters=DeadLetters(MemoryLog(), settings.topics.dlq, lambda reasons: None),
                       max_bytes=1 << 20)
    records = [Message(None, value, offset, 0) for offset, value in enumerate(messages)]
    batch = {Partition(settings.topics.lifecycle, 0): records}

    def fast() -> list[tuple[int, bytes]]:
        fetch = retention_native.Fetch()
        if stage.router.scan(fetch, records, settings.topics.lifecycle, 0):
            raise SystemExit("hotpath: the route stage's fast path declined some of the simulator's events")
        return fetch.packs(PACK_BYTES)

    t_fast, packs = timed(fast, repeat)
    t_slow, (reference, _) = timed(lambda: reference_route(stage, batch), repeat)
    if sorted(packs) != sorted(reference):
        raise SystemExit("hotpath: the route stage's fast path and its reference cut different packs")
    return t_fast / len(messages) * 1e6, t_slow / len(messages) * 1e6


def show(result: dict[str, Any]) -> None:
    window = f" within {result['window']:,} events" if result.get("window") else ""
    mean = result["events"] / result["chunks"]
    table = Table(title=f"CPU µs per event, {result['events']:,} events of {result['customers']:,} customers "
                        f"(chunks of ≤ {result['batch']} per key{window}, mean {mean:.2f})")
    for column in ("step", "reference (Python)", "compiled", "ratio"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for step, us in result["compiled"].items():
        before = result["reference"][step]
        table.add_row(step, f"{before:.2f}", f"{us:.2f}", f"{before / us:.1f}x")
    total_before = sum(result["reference"].values())
    total_after = sum(result["compiled"].values())
    table.add_row("total", f"{total_before:.2f}", f"{total_after:.2f}", f"{total_before / total_after:.2f}x")
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.hotpath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=8, help="events of one key applied together, at most")
    parser.add_argument("--window", type=int, default=0,
                        help="group only events this close together (a fetch's size, e.g. 4000); 0: the whole file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    result = run(args)
    show(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
