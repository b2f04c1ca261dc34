"""A soak run (not in CI) — sustained live traffic into one worker; do memory and lag stay flat?

One real ``retention-monitor worker`` (``clock = wall``, production lateness and history) on its own
topics; a paced producer sends simulated traffic stamped with the wall clock at exactly ``--rate``
for ``--minutes``; every ``--sample-interval`` seconds the worker's RSS and CPU come from /proc and
its lag, throughput, visible latency and tracked customers from /metrics. After ``--warm-up-minutes``
a line is fitted to RSS and to each lag: the run is flat when RSS grew less than ``--max-rss-growth``
% and each lag stayed under ``--max-lag-seconds`` of traffic without an upward trend. Prints a row
per minute and the verdict, writes bench/out/soak.json and soak.png; Ctrl-C stops early with partial
results. Exit code 0 flat, 1 not flat (or a failure), 130 aborted. Needs the local stack.
With ``--population steady`` the population is at its target before the load and stops changing
(bench/soak_steady.py), so RSS per minute can be judged flat.

    .venv/bin/python -m bench.soak --minutes 12 --rate 3000 --customers 50000
    .venv/bin/python -m bench.soak --minutes 60 --rate 3000 --customers 50000 --population steady
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench.broker import check, clean_kafka, clean_kept, clean_redis, create_topics, new_tag
from bench.cli import BenchError, OneLineParser, env_assignment, int_range, positive_float
from bench.events import KINDS, MAX_CUSTOMERS, OUT
from bench.monitor import AlertSink, MonitorSetup, processed_probe, visible_count, wait_ready
from bench.procs import ROOT, Child, machine_info, stop_all
from bench.report import mib
from bench.soak_live import LiveProducer, Worker, check_delivery, take_sample
from bench.soak_plot import draw
from bench.soak_report import minute_cells, payload, print_report, write_json
from bench.soak_stats import Check, Limits, MinuteRow, Sample, judge, minute_rows
from bench.soak_steady import Prefill, SteadyPopulation, beyond_facts, prefill, rss_band
from bench.status import rss_bytes
from core.errors import RetentionMonitorError
from core.settings import Settings
from streams.producers.simulate import Simulator

# Live traffic as in production: windows end now, the default lateness and history (MonitorSetup's
# defaults are for replaying half a year of history).
LIVE_ENV = {"RETENTION_CLOCK": "wall", "RETENTION_ALLOWED_LATENESS": "7d", "RETENTION_HISTORY": "800d"}
# The load average counts the soak itself (worker, producer, Kafka): competition shows in what the
# rest of the machine used beyond Kafka's share (~0.15 cores at 3,000 events/s here).
BUSY_REST_CORES = 0.4


def _number(low: float, high: float) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not between {low:g} and {high:g}")
        return value

    return parse


def _checkout(text: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not (path / "retention_monitor" / "cli.py").is_file():
        raise argparse.ArgumentTypeError(f"{text!r} holds no retention_monitor/cli.py")
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(prog="bench.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--minutes", type=_number(0.5, 24 * 60), default=12.0, help="length of the load")
    add("--rate", type=_number(1, 200_000), default=3000.0, help="offered events/s, held for the whole run")
    add("--customers", type=int_range(1, MAX_CUSTOMERS), default=50_000, help="simulated active population")
    add("--population", choices=("growing", "steady"), default="growing",
        help="growing: sign-ups replace churned customers, who stay tracked; steady: a history brings the "
             "population to its target before the load, then it stops changing")  # fmt: skip
    add("--partitions", type=int_range(1, 64), default=4, help="partitions of every topic")
    add("--warm-up-minutes", dest="warmup_minutes", type=_number(0, 24 * 60), default=2.0,
        help="left out of the fits (the population fills up, caches warm)")  # fmt: skip
    add("--sample-interval", type=_number(1, 60), default=5.0, help="seconds between samples")
    add("--max-rss-growth", type=positive_float, default=5.0, help="percent RSS may grow over the measured span")
    add("--max-lag-seconds", type=positive_float, default=2.0, help="bound on each lag, in seconds of traffic")
    add("--seed", type=int_range(0, 2**31), default=7)
    add("--bootstrap", default=Settings().kafka_bootstrap, help="Kafka bootstrap servers")
    add("--startup-timeout", type=positive_float, default=180.0, help="seconds until the worker is ready")
    add("--monitor-env", type=env_assignment, action="append", default=[], metavar="RETENTION_NAME=VALUE",
        help="extra setting for the worker, e.g. RETENTION_STORE=memory://")  # fmt: skip
    add("--monitor-root", type=_checkout, metavar="DIR",
        help="run the worker from another tree, e.g. `git archive HEAD | tar -x -C /tmp/head` (a stable version "
             "while others edit this checkout)")  # fmt: skip
    add("--output", type=Path, default=OUT / "soak.json")
    add("--plot", type=Path, default=OUT / "soak.png")
    add("--keep", action="store_true", help="keep the run's topics, groups and state until the next run starts")
    args = parser.parse_args(argv)
    if args.warmup_minutes >= args.minutes:
        parser.error(f"argument --warm-up-minutes: {args.warmup_minutes:g} leaves nothing of --minutes "
                     f"{args.minutes:g} to measure")  # fmt: skip
    if args.sample_interval * 4 > 60 * (args.minutes - args.warmup_minutes):
        parser.error(f"argument --sample-interval: {args.sample_interval:g} s gives fewer than 4 samples after "
                     "the warm-up")  # fmt: skip
    return args


@dataclass
class Outcome:
    samples: list[Sample]
    producer: dict[str, Any]
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    crashed: str | None = None  # why the worker stopped before the end
    history: Prefill | None = None  # --population steady: what filled the population before the load


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Piped or logged output would wrap the table at rich's default 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=180)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through the clean-up

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return _main(args, console)
    except (BenchError, RetentionMonitorError) as exc:
        console.print(f"[red]bench.soak: {exc}[/]", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("[red]bench.soak: aborted[/]")
        return 130


def _main(args: argparse.Namespace, console: Console) -> int:
    asyncio.run(check(args.bootstrap))
    tag = new_tag("soak")
    run_dir = OUT / "runs" / tag
    clean_kept(console, args.bootstrap, tag, run_dir.parent)
    topics, dlq = [f"{tag}.{kind}" for kind in KINDS], f"{tag}.dlq"
    load_before = os.getloadavg()
    if load_before[0] >= 1.0:
        console.print(f"[yellow]load average {load_before[0]:.1f} before the run: others compete for the CPU[/]")
    started = datetime.now(UTC)
    sink = AlertSink()  # the worker's alerts go here, never to the shared Alertmanager
    try:
        asyncio.run(create_topics(args.bootstrap, [*topics, dlq], args.partitions))
        env = {**LIVE_ENV, **dict(args.monitor_env)}
        app_id = f"{tag}-monitor"
        setup = MonitorSetup(app_id, args.bootstrap, topics, dlq, args.partitions, run_dir / app_id, sink.url, env,
                             args.monitor_root)  # fmt: skip
        child = setup.start("soak")
        with console.status("starting the worker"):
            startup = wait_ready(setup, child, args.startup_timeout)
        ready_rss = rss_bytes(child.pid)
        console.print(f"worker ready in {startup:.1f} s (pid {child.pid}, log {child.log}); {tag}.* with "
                      f"{args.partitions} partitions; {args.rate:,.0f} events/s for {args.minutes:g} min; "
                      f"code: {_code(args.monitor_root)}")  # fmt: skip
        settings = replace(Settings(), kafka_bootstrap=args.bootstrap, topic_lifecycle=topics[0],
                           topic_support=topics[1], topic_feedback=topics[2], topic_team=topics[3])  # fmt: skip
        simulator, history = _population(args, console, settings, setup, child)
        worker = Worker(child.pid, setup.url)
        outcome = asyncio.run(_soak(args, console, settings, simulator, worker=worker, child=child))
        outcome.history = history
        peak = rss_bytes(child.pid, "VmHWM")
        child.stop(grace=120)
        meta = _meta(args, tag, started=started, load_before=load_before, outcome=outcome, startup=startup,
                     ready_rss=ready_rss, peak=peak)  # fmt: skip
        return _report(args, console, outcome, meta, ready_rss)
    finally:
        stop_all()
        sink.close()
        if not args.keep:
            clean_kafka(console, args.bootstrap, tag)
            clean_redis(console, tag)
            shutil.rmtree(run_dir, ignore_errors=True)


def _population(args: argparse.Namespace, console: Console, settings: Settings, setup: MonitorSetup,
                child: Child) -> tuple[Simulator, Prefill | None]:  # fmt: skip
    """The simulator of the load; with ``--population steady``, after a history that filled its population."""
    if args.population == "growing":
        return Simulator(settings.facts, settings.topics, seed=args.seed, scenario="steady",
                         customers=args.customers), None  # fmt: skip
    steady = SteadyPopulation(settings.facts, settings.topics, seed=args.seed, scenario="steady",
                              customers=args.customers)  # fmt: skip
    history = prefill(settings, steady, args.rate, processed=processed_probe(setup),
                      visible=lambda: visible_count(setup), alive=child.alive, last_words=child.tail,
                      console=console, timeout=60 * max(5.0, args.warmup_minutes))  # fmt: skip
    console.print(f"history: {history.events:,} events published and processed in {history.seconds:.1f} s; the "
                  f"population is {history.customers:,} customers from now on (RSS {mib(rss_bytes(child.pid))})")
    return steady, history


async def _soak(args: argparse.Namespace, console: Console, settings: Settings, simulator: Simulator, *,
                worker: Worker, child: Child) -> Outcome:  # fmt: skip
    producer = LiveProducer(settings, simulator, args.rate)
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    outcome = Outcome([], {})
    main_task = asyncio.current_task()

    def on_interrupt() -> None:
        if stop.is_set() and main_task is not None:  # a second Ctrl-C: give up on the partial results too
            main_task.cancel()
            return
        outcome.interrupted = True
        stop.set()
        console.print("[yellow]Ctrl-C: stopping the load, reporting what was measured (Ctrl-C again to abort)[/]")

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    await producer.start()

    def clock() -> float:
        return loop.time() - producer.t0

    try:
        outcome.samples.append(await take_sample(worker, producer, 0.0))  # ready, before any event
        sender = asyncio.create_task(producer.run(60 * args.minutes, stop))
        try:
            await _watch(args, console, sender, producer=producer, worker=worker, child=child, outcome=outcome,
                         clock=clock, stop=stop)  # fmt: skip
        except asyncio.CancelledError:
            sender.cancel()
            raise KeyboardInterrupt from None
        await sender
        check_delivery(producer)
        # A Ctrl-C from a terminal reaches the worker too (same process group): its last sample stands.
        if not outcome.interrupted:
            outcome.samples.append(await take_sample(worker, producer, clock()))  # after the last send
    finally:
        with contextlib.suppress(Exception):
            await producer.close()
        loop.remove_signal_handler(signal.SIGINT)
    outcome.producer = {
        "offered_rate": args.rate, "achieved_rate": producer.achieved_rate, "sent": producer.sent,
        "errors": producer.errors, "seconds": producer.elapsed(), "max_slip_s": producer.max_slip_s,
    }  # fmt: skip
    return outcome


async def _watch(args: argparse.Namespace, console: Console, sender: asyncio.Task[None], *, producer: LiveProducer,
                 worker: Worker, child: Child, outcome: Outcome, clock: Callable[[], float],
                 stop: asyncio.Event) -> None:  # fmt: skip
    """Sample until the producer is done, with a progress bar and a line per completed minute."""
    total_s, interval, warmup_s = 60 * args.minutes, args.sample_interval, 60 * args.warmup_minutes
    columns = (TextColumn("[bold]soak"), BarColumn(), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
               TextColumn("{task.fields[now]}"))  # fmt: skip
    printed = 0
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("soak", total=total_s, now="")
        due = interval
        while not sender.done():
            await asyncio.wait({sender}, timeout=max(0.0, due - clock()))
            if sender.done():
                break
            sample = await take_sample(worker, producer, clock())
            outcome.samples.append(sample)
            due = max(due + interval, clock() + 0.5 * interval)  # a slow scrape must not cause a burst of samples
            bar.update(task, completed=min(total_s, sample.t), now=_now(sample))
            # Only minutes that are over: the table at the end shows the same rows.
            complete = [s for s in outcome.samples if s.t <= 60 * (sample.t // 60) + 1e-9]
            rows = minute_rows(complete, warmup_s)
            for row in rows[printed:]:
                console.print(_minute_line(row), soft_wrap=True)
            printed = max(printed, len(rows))
            if not child.alive():
                outcome.crashed = f"the worker exited ({child.proc.returncode}) at {sample.t:.0f} s: {child.tail(3)}"
                stop.set()


def _now(sample: Sample) -> str:
    s = sample.scrape
    rss = "n/a" if sample.rss_bytes is None else f"{sample.rss_bytes / 2**20:,.0f} MiB"
    return f"RSS {rss}, route lag {s.route_lag}, apply lag {s.apply_lag}, customers {s.customers}"


def _minute_line(row: MinuteRow) -> str:
    c = minute_cells(row)
    return (f"min {c[0]}: RSS {c[1]} MiB, customers {c[2]}, lag max route {c[3]} / apply {c[4]}, {c[5]} events/s, "
            f"visible p50 {c[6]} ms / p99 {c[7]} ms (slowest stage: {c[8]}, loop stall max {c[9]} ms), "
            f"worker {c[10]} cores, load {c[13]}")  # fmt: skip


def _meta(args: argparse.Namespace, tag: str, *, started: datetime, load_before: tuple[float, float, float],
          outcome: Outcome, startup: float, ready_rss: int | None, peak: int | None) -> dict[str, Any]:  # fmt: skip
    loads = [s.load1 for s in outcome.samples] or [0.0]
    load = {"before": load_before, "during_mean": sum(loads) / len(loads), "during_max": max(loads),
            "after": os.getloadavg()}  # fmt: skip
    return {
        "tag": tag,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "interrupted": outcome.interrupted,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine_info(),
        "versions": _versions(),
        "load_average": load,
        "producer": outcome.producer,
        "history": None if outcome.history is None else asdict(outcome.history),
        "worker": {"startup_s": startup, "ready_rss_bytes": ready_rss, "peak_rss_bytes": peak, "env": LIVE_ENV,
                   "code": _code(args.monitor_root)},
    }


def _report(args: argparse.Namespace, console: Console, outcome: Outcome, meta: dict[str, Any],
            ready_rss: int | None) -> int:  # fmt: skip
    warmup_s = 60 * args.warmup_minutes
    samples = outcome.samples
    limits = Limits(args.rate, warmup_s, args.max_rss_growth, args.max_lag_seconds)
    verdict = judge(samples, limits, achieved_rate=outcome.producer.get("achieved_rate"))
    rows = minute_rows(samples, warmup_s)
    verdict.checks.insert(1, rss_band(rows, args.max_rss_growth))  # next to the fitted growth
    verdict.checks.insert(2, beyond_facts(samples, warmup_s, args.max_rss_growth))
    if outcome.crashed:
        verdict.checks.append(Check("worker", "fail", outcome.crashed, "runs for the whole soak"))
    growing = verdict.customers is not None and verdict.customers.rise > 0
    notes = [*outcome.notes, *_observations(args, outcome, rows, growing, verdict.bytes_per_new_customer)]
    meta["notes"] = notes
    print_report(console, rows, verdict, rate=args.rate, warmup_s=warmup_s, producer=outcome.producer,
                 ready_rss=ready_rss, load=meta["load_average"], notes=notes)  # fmt: skip
    data = payload(meta, samples, rows, verdict, limits)
    write_json(args.output, data)
    draw(data, args.plot)
    console.print(f"wrote {args.output} and {args.plot}")
    return 0 if verdict.passed else 1


def _observations(args: argparse.Namespace, outcome: Outcome, rows: list[MinuteRow], growing: bool,
                  per_customer: float | None) -> list[str]:  # fmt: skip
    notes = []
    samples = outcome.samples
    if outcome.interrupted and samples:
        notes.append(f"interrupted after {samples[-1].t / 60:.1f} of {args.minutes:g} min: partial results")
    shown = "n/a" if per_customer is None else f"{per_customer:,.0f} B"
    if outcome.history is not None:
        notes.append(f"steady population: {outcome.history.customers:,} customers, filled by a history of "
                     f"{outcome.history.events:,} events before the load; no sign-ups after it"
                     + (f", yet the customers tracked grew (RSS slope per new customer {shown})" if growing else ""))
    elif growing:
        notes.append("customers tracked kept growing after the warm-up (the simulator replaces churned customers "
                     "with new sign-ups, and churned ones stay tracked): part of any RSS growth is their state; "
                     f"RSS slope per new customer {shown}; --population steady keeps them constant")  # fmt: skip
    busy = [r for r in rows if (r.span.rest_cores or 0.0) > BUSY_REST_CORES]
    if busy:
        worst = max(busy, key=lambda r: r.span.rest_cores or 0.0)
        notes.append(f"other processes competed for the CPU in {len(busy)} of {len(rows)} minutes (the rest of the "
                     f"machine used up to {worst.span.rest_cores:.2f} cores, in minute {worst.minute})")  # fmt: skip
    slip = outcome.producer.get("max_slip_s") or 0.0
    if slip > 1.0:
        notes.append(f"the producer fell {slip:.1f} s behind its schedule at worst (this process was starved of CPU)")
    return notes


def _code(root: Path | None) -> str:
    """Which code the worker ran: this checkout (with whatever others have changed in it) or another tree."""
    if root is not None:
        return str(root)
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "this checkout"
    return f"this checkout at {head}" + (" with uncommitted changes" if dirty else "")


def _versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in ("aiokafka", "faust-streaming", "msgspec"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


if __name__ == "__main__":
    sys.exit(main())
