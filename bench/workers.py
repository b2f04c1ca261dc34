"""The workers mode of the bench (``bench/run.py --workers 1,2,4``): does the partitioned monitor scale?

The backlog, produced once, is consumed for each N by N ``retention-monitor worker`` processes of a
fresh app id (fresh consumer groups and internal topics, the same input topics), started together:

- events/s: from every worker ready (the partitions shared) until the workers' processed counts
  (applied + dead-lettered, minus duplicates replayed by the joins' rebalances) sum to the backlog,
  over the events processed in that span (the first workers begin before the last is ready);
- CPU µs/event: every worker's CPU time (/proc) from when its ``/ready`` first lists owned partitions
  (it applies events from then on, before ``/ready`` says 200) until then, summed, ÷ the backlog;
  start-up and the first join are left out, later rebalances and restores count;
- RSS growth per customer, per worker: its settled RSS after the backlog minus the mean RSS of N idle
  workers (ready, on empty topics with as many partitions), ÷ the backlog's customers;
- exactness: every worker's ``/kpis`` answer (period, segment "all") against one worker's;
- hand-over (N ≥ 2): the last worker killed with SIGKILL; seconds until the survivors own every
  partition (their ``/ready`` partitions) and until their ``/kpis`` answers are exact again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bench.broker import clean_kafka, create_topics, message_count
from bench.cli import BenchError
from bench.cluster import Cluster
from bench.events import KINDS
from bench.monitor import AlertSink, MonitorSetup
from bench.procs import free_port
from bench.report import duration, mib, number
from bench.waiting import settle, wait_progress
from bench.workers_stats import Handover, ScaleResult, covers, differences, workers

if TYPE_CHECKING:
    from bench.harness import Repeat, Run

POLL_S = 0.2  # between looks at the survivors during a hand-over


def measure_workers(repeat: Repeat, sink: AlertSink) -> list[ScaleResult]:
    """Each cluster size in turn (ascending, 1 first: the others are compared with it)."""
    run = repeat.run
    backlog = asyncio.run(message_count(run.args.bootstrap, repeat.topics))
    results: list[ScaleResult] = []
    reference: dict[str, Any] | None = None
    for n in run.args.workers:
        result, answer = _size(repeat, n, backlog, sink, reference)
        if n == 1:
            reference = answer
        results.append(result)
        run.console.print(_line(result))
    return results


def _line(r: ScaleResult) -> str:
    growth = "n/a" if r.growth_max is None else f"{r.growth_mean:,.0f} / {r.growth_max:,.0f} B"
    exact = {True: "yes", False: "NO", None: "n/a"}[r.exact]
    hand = r.handover
    over = "" if hand is None else f", hand-over: owned {duration(hand.owned_s)}, exact {duration(hand.all_exact_s)}"
    return (f"{workers(r.workers)}: {number(r.events_per_s)} events/s, "
            f"CPU {number(r.cpu_us_per_event)} µs/event, "
            f"RSS growth per customer per worker mean / max {growth}, exact {exact}{over} [{r.status}]")  # fmt: skip


def _size(repeat: Repeat, n: int, backlog: int, sink: AlertSink,
          reference: dict[str, Any] | None) -> tuple[ScaleResult, dict[str, Any] | None]:  # fmt: skip
    run, args = repeat.run, repeat.run.args
    app = f"{repeat.prefix}-n{n:02d}"  # two digits: no app id is part of another, so clean-up is per size
    result = ScaleResult(n, events=backlog, customers=run.events.distinct_customers)
    answer = None
    run.console.rule(f"{workers(n)} of app id {app}: {backlog:,} events, "
                     f"{args.partitions} partitions")  # fmt: skip
    try:
        if "idle" not in args.skip:
            result.rss_idle_bytes = _idle(run, app, n, sink)
        cluster = Cluster(_setups(run, app, repeat.topics, n, sink), "w")
        try:
            if _backlog(run, cluster, result):
                answer = _agreed(run, cluster, result, reference)
                if n > 1 and "handover" not in args.skip:
                    result.handover = _handover(run, cluster, answer)
        finally:
            with run.console.status(f"stopping the {workers(n)}"):
                cluster.stop()
    except BenchError as exc:
        result.status = "failed"
        result.notes.append(f"{workers(n)}: {exc}")
    finally:
        if not args.keep:
            clean_kafka(run.console, args.bootstrap, app)
    return result, answer


def _setups(run: Run, app: str, topics: list[str], n: int, sink: AlertSink) -> list[MonitorSetup]:
    """N workers of app id ``app`` (its own dead-letter topic): the same settings, each its own port and data dir."""
    base = run.monitor(app, topics, f"{app}.dlq", sink)
    return [replace(base, data_dir=base.data_dir / f"w{i + 1}", web_port=free_port()) for i in range(n)]


def _idle(run: Run, app: str, n: int, sink: AlertSink) -> list[int | None]:
    """Each worker's RSS in a cluster of N that is ready on empty topics: the baseline of the growth."""
    args, idle_app = run.args, f"{app}-idle"
    topics = [f"{idle_app}.{kind}" for kind in KINDS]
    asyncio.run(create_topics(args.bootstrap, [*topics, f"{idle_app}.dlq"], args.partitions))
    cluster = Cluster(_setups(run, idle_app, topics, n, sink), "idle")
    try:
        with run.console.status(f"idle cluster of {workers(n)} (memory baseline)"):
            ready = cluster.wait_ready(args.partitions, args.startup_timeout)
            settle(lambda: sum(r or 0 for r in cluster.rss()), quiet_s=3.0, limit_s=20.0)
            rss = cluster.rss()
    finally:
        cluster.stop()
    run.console.print(f"idle: RSS per worker {', '.join(mib(r) for r in rss)}, all ready {ready:.1f} s after start")
    return rss


def _backlog(run: Run, cluster: Cluster, result: ScaleResult) -> bool:
    """Time the backlog from every worker ready; then each worker's settled RSS. False: not all processed."""
    args, n, backlog = run.args, cluster.size, result.events or 0
    with run.console.status(f"starting {workers(n)}: waiting until each is ready and the partitions are shared"):
        result.ready_s = cluster.wait_ready(args.partitions, args.startup_timeout)
    result.owned = [list(look.partitions) for look in cluster.looks()]
    began = time.perf_counter()
    result.head_start = start = min(cluster.processed(), backlog)
    end = wait_progress(run.console, workers(n), backlog, cluster.processed, alive=cluster.alive,
                        timeout=args.timeout, start=start, interval=args.scrape_interval,
                        last_words=cluster.tails)  # fmt: skip
    cpu, timed = cluster.cpu_since_owning(), min(end.count, backlog) - start
    result.cpu_us_per_event = 1e6 * cpu / max(1, min(end.count, backlog))
    if start:
        result.notes.append(f"{workers(n)}: {start:,} of {backlog:,} events were processed before every worker was "
                            "ready: events/s covers the rest")  # fmt: skip
    if timed <= 0:
        result.notes.append(f"{workers(n)}: nothing left to time once all were ready (a larger --events times more)")
    else:
        result.seconds = end.at - began
        result.events_per_s = timed / result.seconds
    if not end.reached:
        result.status = "timeout"
        result.notes.append(f"{workers(n)}: processed {end.count:,} of {backlog:,} in {args.timeout:.0f} s")
        return False
    # Each KPI store follows its partitions' changelog behind the counters: let memory settle first.
    with run.console.status("waiting until the workers' RSS settles"):
        settle(lambda: sum(r or 0 for r in cluster.rss()), quiet_s=3.0, limit_s=60.0)
    result.rss_after_bytes = cluster.rss()
    return True


def _agreed(run: Run, cluster: Cluster, result: ScaleResult,
            reference: dict[str, Any] | None) -> dict[str, Any] | None:  # fmt: skip
    """The ``/kpis`` answer all workers give (once stable), judged against one worker's."""
    query = {"period": run.args.period, "segment": run.args.segment}
    with run.console.status(f"asking every worker for /kpis?period={query['period']}&segment={query['segment']}"):
        answer, why = cluster.agreed(query, quiet_s=2.0, limit_s=run.args.startup_timeout)
    if answer is None:
        result.exact = False
        result.notes.append(f"{workers(cluster.size)}: no common /kpis answer: {why}")
        return None
    with run.console.status("timing /kpis answers"):
        result.answer_ms = cluster.answer_ms(query)
    if cluster.size == 1:  # the reference of the others
        result.exact = True
        return answer
    if reference is None:
        result.notes.append(f"{workers(cluster.size)}: no one-worker /kpis answer to compare with")
        return answer
    result.exact = answer == reference
    if not result.exact:
        result.notes.append(f"{workers(cluster.size)}: /kpis differs from one worker's: "
                            f"{'; '.join(differences(answer, reference))}")  # fmt: skip
    return answer


def _handover(run: Run, cluster: Cluster, answer: dict[str, Any] | None) -> Handover:
    """Kill the last worker; time the survivors until they own every partition and answer exactly again
    (as before the kill; without an answer from before, only the ownership is timed)."""
    args, victim = run.args, cluster.size - 1
    survivors = list(range(victim))
    query = {"period": args.period, "segment": args.segment}
    hand, exact = Handover(victim + 1), {}
    with run.console.status(f"hand-over: worker {victim + 1} killed (SIGKILL), waiting for the survivors"):
        t0 = time.perf_counter()
        cluster.kill(victim)
        while time.perf_counter() - t0 < args.startup_timeout:
            if hand.owned_s is None and covers((look.partitions for look in cluster.looks(survivors)),
                                               args.partitions):  # fmt: skip
                hand.owned_s = time.perf_counter() - t0
            for i in survivors:
                if answer is not None and i not in exact and cluster.answer(i, query)[0] == answer:
                    exact[i] = time.perf_counter() - t0
            if hand.owned_s is not None and (answer is None or len(exact) == len(survivors)):
                break
            time.sleep(POLL_S)
    hand.first_exact_s = min(exact.values(), default=None)
    hand.all_exact_s = max(exact.values()) if len(exact) == len(survivors) else None
    if hand.owned_s is None or (answer is not None and hand.all_exact_s is None):
        missing = "own every partition" if hand.owned_s is None else "all answer exactly"
        run.console.print(f"[red]hand-over: the survivors did not {missing} within {args.startup_timeout:.0f} s[/]")
    return hand
