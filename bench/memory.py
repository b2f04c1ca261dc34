"""Memory per tracked customer of the worker's state: owner states + KPI store, no Kafka.

    .venv/bin/python bench/memory.py --customers 20000 --events 200000

Feeds simulated events through the same code a worker runs (Processor per key, then the KpiStore
fed with each key's fact set), with a dict standing in for the ``memory://`` partition stores, and
reports the traced Python heap per customer, split into the owner's states and the KPI store.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from core.settings import Settings
from metrics.store import KpiStore
from streams.apply.processor import Processor, change_entry
from streams.contract.decode import Event, decode
from streams.contract.events import partition_key
from streams.follow.follower import apply_entries
from streams.memory import Message
from streams.producers.simulate import Simulator
from streams.wire import partition_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    console = Console()
    settings = Settings()
    sim = Simulator(settings.facts, settings.topics, seed=11, scenario="steady", customers=args.customers)
    messages = [v for _, _, v in sim.events(start_us=1_735_689_600_000_000, count=args.events,
                                             rate=args.events / (365 * 86_400))]
    currencies = frozenset(settings.rates)
    processor = Processor(settings.facts)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    table: dict[bytes, bytes] = {}
    store = KpiStore(processor.ctx)
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("applying", total=len(messages))
        for n, value in enumerate(messages):
            event = decode(value, currencies)
            if isinstance(event, Event):
                key = partition_key(event.data).encode()
                _, update = processor.apply(table.get(key), event)
                if update is not None and update.state is not None:
                    table[key] = update.state
                    entry = Message(key, change_entry(update, 0), n, 0)
                    apply_entries(store, partition_of(key, settings.partitions), [entry])
            if n % 5000 == 0:
                progress.update(task, completed=n)
    seconds = time.perf_counter() - started
    gc.collect()
    tables = sum(table.nbytes() for table in store.checksums.values())  # compiled: not traced
    used = tracemalloc.get_traced_memory()[0] - base + tables
    table_bytes = sum(len(k) + len(v) for k, v in table.items())
    customers = store.customers()
    del table
    gc.collect()
    store_only = tracemalloc.get_traced_memory()[0] - base + tables
    out = Table(title="memory per tracked customer (Python heap, tracemalloc)")
    for col in ("customers", "events", "facts indexed", "heap MiB", "bytes / customer", "of which KPI store",
                "owner state payload B / cust", "events/s (in-process)"):
        out.add_column(col, justify="right")
    out.add_row(f"{customers:,}", f"{len(messages):,}", f"{len(store.index):,}", f"{used / 2**20:.0f}",
                f"{used / customers:,.0f}", f"{store_only / customers:,.0f}", f"{table_bytes / customers:,.0f}",
                f"{len(messages) / seconds:,.0f}")
    console.print(out)


if __name__ == "__main__":
    main()
