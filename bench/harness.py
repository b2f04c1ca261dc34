"""The benchmark in one command: one event file, produced into Kafka once per repeat, consumed by

  (a) the ceiling — a raw aiokafka ``getmany`` loop that only decodes (bench/ceiling.py),
  (b) the monitor — a real ``retention-monitor worker`` with every KPI on (bench/monitor.py),
  (c) peers doing the same per-customer state and per-bucket counts (bench/peer_logic.py) in a
      framework: Quix Streams (bench/quix_peer.py), Bytewax (bench/bytewax_peer.py) and Pathway
      (bench/pathway_peer.py),

one after the other (never two at once: the machine has 2 cores). Each consumes everything in the
input topics, then a paced producer sends a fresh slice of the file at ``--rate`` for
``--latency-seconds`` while it is caught up. Prints one table (medians over ``--repeat``) and
writes bench/out/results.json; ``python -m bench.plot`` draws it. Needs the local stack
(``.venv/bin/retention-monitor stack up``) and, for the peers, their packages (the ``bench`` extra).

    .venv/bin/python bench/run.py --customers 5000 --events 50000 --latency-seconds 10
    .venv/bin/python bench/run.py --customers 1000000 --events 8000000 --repeat 3

With ``--workers 1,2,4`` it measures the partitioned monitor instead: the backlog consumed by 1, 2
and 4 workers of one app id in turn (bench/workers.py); bench/out/workers.json and workers.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from bench.broker import check, clean_kafka, clean_kept, clean_redis, create_topics, message_count, new_tag, publish
from bench.children import ChildSpec, measure_child
from bench.cli import BenchError, OneLineParser, choices_list, env_assignment, int_list, int_range, positive_float
from bench.events import KINDS, MAX_CUSTOMERS, OUT, EventFile, describe, ensure_events, read_events
from bench.monitor import AlertSink, Limits, MonitorSetup, idle_rss, measure
from bench.procs import machine_info, python_module, stop_all
from bench.report import duration, latency, mib, number, print_report, write_results
from bench.stats import SYSTEMS, Result, check_targets, summarize
from bench.waiting import Paced
from bench.workers import measure_workers
from bench.workers_plot import draw as draw_workers
from bench.workers_report import print_scaling, write_scaling
from bench.workers_stats import ScaleResult, scaling_targets
from core.errors import RetentionMonitorError
from core.settings import Settings

SKIPPABLE = (*SYSTEMS, "latency", "recovery", "idle", "handover")
WORKERS_SKIPPABLE = ("idle", "handover")  # what --skip may name with --workers
RUN_ORDER = ("monitor", "quix", "bytewax", "pathway", "ceiling")  # see _repeat
# A peer's modules and the requirement that brings them (the versions measured, pinned in constraints.txt).
PEER_PACKAGES = {
    "quix": (("quixstreams",), "quixstreams==3.28.1"),
    "bytewax": (("bytewax", "confluent_kafka"), "bytewax[kafka]==0.21.1"),
    "pathway": (("pathway",), "pathway==0.33.0"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(prog="bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--customers", type=int_range(1, MAX_CUSTOMERS), default=20_000, help="simulated population (≤ 1M)")
    add("--events", type=int_range(1, 100_000_000), default=200_000, help="events in the backlog")
    add("--partitions", type=int_range(1, 64), help="partitions of every topic (default 4; 8 with --workers)")
    add("--rate", type=positive_float, default=5000.0, help="offered events/s of the paced latency slice")
    add("--latency-seconds", type=positive_float, default=30.0, help="length of each paced slice")
    add("--repeat", type=int_range(1, 20), default=1, help="repeats; the table shows medians")
    add("--skip", type=choices_list(SKIPPABLE), action="extend", default=[],
        help=f"comma-separated, any of: {', '.join(SKIPPABLE)}")  # fmt: skip
    add("--timeout", type=positive_float, default=1800.0, help="seconds each system may take per phase")
    add("--startup-timeout", type=positive_float, default=180.0, help="seconds until a process is ready")
    add("--scrape-interval", type=positive_float, default=1.0, help="seconds between scrapes of the monitor")
    add("--monitor-env", type=env_assignment, action="append", default=[], metavar="RETENTION_NAME=VALUE",
        help="extra setting for the monitor worker, e.g. RETENTION_STORE=rocksdb://")  # fmt: skip
    add("--monitor-root", type=_checkout, metavar="DIR",
        help="run the worker from another checkout, e.g. `git archive HEAD | tar -x -C /tmp/head`")  # fmt: skip
    add("--seed", type=int_range(0, 2**31), default=7)
    add("--bootstrap", default=Settings().kafka_bootstrap, help="Kafka bootstrap servers")
    add("--output", type=Path, help="default bench/out/results.json (workers.json with --workers)")
    add("--keep", action="store_true", help="keep the run's topics, groups and state until the next run starts")
    add("--workers", type=int_list(1, 64), metavar="N,N,…",
        help="instead of the systems: the backlog consumed by N monitor workers of one app id, for each N")  # fmt: skip
    add("--period", default="2025", help="with --workers: the /kpis period compared across workers")
    add("--segment", default="all", help="with --workers: the /kpis segment compared across workers")
    args = parser.parse_args(argv)
    _resolve(parser, args)
    return args


def _resolve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Defaults that depend on the mode, and the combinations the workers mode cannot run."""
    args.partitions = args.partitions or (8 if args.workers else 4)
    args.output = args.output or OUT / ("workers.json" if args.workers else "results.json")
    if not args.workers:
        return
    shown = ",".join(map(str, args.workers))
    if args.workers[0] != 1:
        parser.error(f"argument --workers: {shown} lacks 1 (every figure is compared with one worker)")
    if args.workers[-1] > args.partitions:
        parser.error(f"argument --workers: {args.workers[-1]} workers but {args.partitions} partitions "
                     "(a worker that owns none is never ready)")  # fmt: skip
    other = [s for s in args.skip if s not in WORKERS_SKIPPABLE]
    if other:
        parser.error(f"argument --skip: {other[0]!r} does not apply with --workers "
                     f"(only {', '.join(WORKERS_SKIPPABLE)})")  # fmt: skip
    if args.repeat != 1:
        parser.error("argument --repeat: one repeat only with --workers")


def _checkout(text: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not (path / "retention_monitor" / "cli.py").is_file():
        raise argparse.ArgumentTypeError(f"{text!r} holds no retention_monitor/cli.py")
    return path


@dataclass
class Run:
    """One invocation: its unique tag (in every topic, group and app id it creates) and its event file."""

    args: argparse.Namespace
    console: Console
    events: EventFile
    systems: list[str]
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tag: str = field(default_factory=lambda: new_tag("bench"))

    @property
    def dir(self) -> Path:
        return OUT / "runs" / self.tag

    @property
    def slice_size(self) -> int:
        return 0 if "latency" in self.args.skip else max(1, round(self.args.rate * self.args.latency_seconds))

    @property
    def limits(self) -> Limits:
        a = self.args
        return Limits(a.startup_timeout, a.timeout, a.scrape_interval, recovery="recovery" not in a.skip)

    def monitor(self, app_id: str, inputs: list[str], dlq: str, sink: AlertSink) -> MonitorSetup:
        return MonitorSetup(app_id, self.args.bootstrap, inputs, dlq, self.args.partitions, self.dir / app_id,
                            sink.url, dict(self.args.monitor_env), self.args.monitor_root)  # fmt: skip


@dataclass(frozen=True)
class Repeat:
    """One repeat: the backlog in its own topics, then each system in turn, each with a fresh slice."""

    run: Run
    index: int

    @property
    def prefix(self) -> str:  # in every name the repeat creates, so it can be deleted on its own
        return f"{self.run.tag}-r{self.index + 1:02d}"

    @property
    def topics(self) -> list[str]:
        return [f"{self.prefix}.{kind}" for kind in KINDS]

    def paced(self, position: int) -> Paced | None:
        """Slice ``position`` of the file's tail: events no system of this repeat has seen yet."""
        size = self.run.slice_size
        if not size:
            return None
        start = self.run.events.events + position * size
        topics = self.topics
        messages = [(topics[k], key, value) for k, key, value in read_events(self.run.events, start, start + size)]
        return Paced(self.run.args.bootstrap, messages, self.run.args.rate)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Piped or logged output would wrap the table at rich's default 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=160)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through the clean-up below

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return _main(args, console)
    except (BenchError, RetentionMonitorError) as exc:  # the monitor's publisher errors are one line too
        console.print(f"[red]bench: {exc}[/]", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("[red]bench: interrupted[/]")
        return 130


def _main(args: argparse.Namespace, console: Console) -> int:
    systems = [] if args.workers else [s for s in RUN_ORDER if s not in args.skip]
    if not systems and not args.workers:
        raise BenchError("--skip leaves no system to run")
    check_peers(systems)
    asyncio.run(check(args.bootstrap))
    slice_size = 0 if "latency" in args.skip else max(1, round(args.rate * args.latency_seconds))
    events = ensure_events(args.customers, args.events, slice_size * len(systems), args.seed, console=console)
    describe(events, console)
    load = os.getloadavg()[0]
    if load >= 1.0:  # the systems get what the 2 cores have left: say so before the numbers
        console.print(f"[yellow]load average {load:.1f} before the run: other processes compete for the CPU[/]")
    run = Run(args, console, events, systems, load_before=os.getloadavg())
    clean_kept(console, args.bootstrap, run.tag, run.dir.parent)
    sink: AlertSink | None = None
    try:
        if args.workers:
            sink = AlertSink()
            repeat = Repeat(run, 0)
            _produce(repeat)
            _report_workers(run, measure_workers(repeat, sink))
            return 0
        idle: int | None = None
        if "monitor" in systems:
            sink = AlertSink()
            if "idle" not in args.skip:
                idle = _idle(run, sink)
        runs = [result for index in range(args.repeat) for result in _repeat(Repeat(run, index), idle, sink)]
        _report(run, runs)
        return 0
    finally:
        stop_all()
        if sink is not None:
            sink.close()
        if not args.keep:
            clean_kafka(run.console, run.args.bootstrap, run.tag)
            clean_redis(run.console, run.tag)
            shutil.rmtree(run.dir, ignore_errors=True)


def check_peers(systems: list[str]) -> None:
    """Stop with one line naming the pip command when a peer to run is not installed."""
    for system in systems:
        modules, requirement = PEER_PACKAGES.get(system, ((), ""))
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            raise BenchError(f"{missing[0]} is not installed (the {system} peer): "
                             f"`.venv/bin/pip install '{requirement}'`, or --skip {system}")  # fmt: skip


def _idle(run: Run, sink: AlertSink) -> int | None:
    idle_app = f"{run.tag}-idle"  # its own empty topics: a worker that never sees an event
    setup = run.monitor(idle_app, [f"{idle_app}.{k}" for k in KINDS], f"{idle_app}.dlq", sink)
    try:
        idle, startup = idle_rss(setup, run.args.startup_timeout, run.console)
    except BenchError as exc:  # the monitor's own run will fail and say why; the others still run
        run.console.print(f"[red]idle monitor worker: {exc}[/]", soft_wrap=True)
        return None
    run.console.print(f"idle monitor worker: RSS {mib(idle)}, ready {startup:.1f} s after start")
    return idle


def _repeat(repeat: Repeat, idle: int | None, sink: AlertSink | None) -> list[Result]:
    """Produce the backlog into the repeat's topics, then measure each system on them in turn.

    Each repeat starts from the same state, so medians compare like with like. The monitor goes first:
    it alone is judged on memory per customer and recovery, so it gets the backlog without any slice.
    """
    run, args = repeat.run, repeat.run.args
    _produce(repeat)
    results = []
    for position, system in enumerate(run.systems):
        results.append(_measure(repeat, position, system, idle, sink))
    if not args.keep:  # bounds the disk a long run takes in Kafka
        clean_kafka(run.console, run.args.bootstrap, repeat.prefix)
    return results


def _produce(repeat: Repeat) -> None:
    run, args = repeat.run, repeat.run.args
    asyncio.run(create_topics(args.bootstrap, [*repeat.topics, f"{repeat.prefix}.dlq"], args.partitions))
    run.console.rule(f"repeat {repeat.index + 1}/{args.repeat}: producing the backlog into {repeat.prefix}.* "
                     f"({args.partitions} partitions)")  # fmt: skip
    topics = repeat.topics
    backlog = ((topics[k], key, value) for k, key, value in read_events(run.events, 0, run.events.events))
    stats = asyncio.run(publish(args.bootstrap, backlog, total=run.events.events))
    run.console.print(f"produced {stats.sent:,} events in {stats.seconds:.1f} s ({stats.rate:,.0f}/s)")


def _measure(repeat: Repeat, position: int, system: str, idle: int | None, sink: AlertSink | None) -> Result:
    run, args, console = repeat.run, repeat.run.args, repeat.run.console
    backlog = asyncio.run(message_count(args.bootstrap, repeat.topics))
    paced = repeat.paced(position)
    # Earlier systems' slices stayed in the topics: their new customers count too.
    customers = run.events.customers_after(position * run.slice_size)
    console.rule(f"{system}, repeat {repeat.index + 1}/{args.repeat}: {backlog:,} events in the topics")
    try:
        if system == "monitor":
            assert sink is not None
            setup = run.monitor(f"{repeat.prefix}-monitor", repeat.topics, f"{repeat.prefix}.dlq", sink)
            result = measure(setup, backlog, paced, customers=customers, idle=idle, limits=run.limits, console=console)
        else:
            spec = _child_spec(repeat, system)
            result = measure_child(spec, backlog, paced, customers=customers, limits=run.limits, console=console)
    except BenchError as exc:
        result = Result(system, status="failed", events=backlog, notes=[f"{system}: {exc}"])
    console.print(
        f"{system}: {number(result.events_per_s)} events/s, CPU {number(result.cpu_us_per_event)} µs/event, "
        f"latency p50/p99 {latency(result)} ({_cores(result.paced_cpu_cores)} while paced"
        f"{'' if result.loop_stall_max_s is None else f', loop stalls ≤ {duration(result.loop_stall_max_s)}'}), "
        f"peak RSS {mib(result.peak_rss_bytes)}, "
        f"recovery {duration(result.recovery_s)} [{result.status}]"
    )
    return result


def _cores(value: float | None) -> str:
    return "n/a cores" if value is None else f"{value:.2f} cores"


def _child_spec(repeat: Repeat, system: str) -> ChildSpec:
    run, name = repeat.run, f"{repeat.prefix}-{system}"
    common = ["--bootstrap", run.args.bootstrap, "--topics", ",".join(repeat.topics)]
    log, status = run.dir / f"{name}.log", run.dir / f"{name}.status.json"
    if system == "ceiling":
        return ChildSpec(system, python_module("bench.ceiling", *common), log, status)
    if system == "bytewax":  # no consumer group (it assigns partitions itself), no state on disk
        return ChildSpec(system, python_module("bench.bytewax_peer", *common), log, status, per_customer=True)
    if system == "pathway":  # no state on disk: Pathway's default is no persistence
        argv = python_module("bench.pathway_peer", *common, "--group", name)
        return ChildSpec(system, argv, log, status, per_customer=True)
    state = run.dir / name
    argv = python_module("bench.quix_peer", *common, "--group", name, "--partitions", str(run.args.partitions),
                         "--state-dir", str(state))  # fmt: skip
    return ChildSpec(system, argv, log, status, state_dir=state, per_customer=True)


def _report(run: Run, runs: list[Result]) -> None:
    args = run.args
    summary = {s: summarize([r for r in runs if r.system == s]) for s in SYSTEMS if s in run.systems}
    rate = None if "latency" in args.skip else args.rate
    targets = check_targets(summary, args.rate, args.customers)
    print_report(run.console, summary, targets, rate, args.repeat)
    write_results(args.output, _meta(run), runs, summary, targets)
    run.console.print(f"wrote {args.output}")


def _meta(run: Run) -> dict[str, Any]:
    """What results.json (and workers.json) say about the run besides the numbers."""
    return {
        "tag": run.tag,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(run.args).items()},
        "machine": machine_info(),
        "load_average": {"before": run.load_before, "after": os.getloadavg()},  # 1, 5, 15 min
        "versions": _versions(),
        "event_file": {k: v for k, v in asdict(run.events).items() if k != "tail_new_customers"},
    }


def _report_workers(run: Run, results: list[ScaleResult]) -> None:
    targets = scaling_targets(results)
    print_scaling(run.console, results, targets, run.args.partitions)
    output: Path = run.args.output
    write_scaling(output, _meta(run), results, targets)
    draw_workers(json.loads(output.read_text()), output.with_suffix(".png"))
    run.console.print(f"wrote {output} and {output.with_suffix('.png')}")


def _versions() -> dict[str, str]:
    found = {}
    for name in ("aiokafka", "faust-streaming", "quixstreams", "bytewax", "pathway", "confluent-kafka", "msgspec"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    found["python"] = sys.version.split()[0]
    return found


