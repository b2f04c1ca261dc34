"""The handlers behind each ``retention-monitor`` sub-command (imported lazily by the CLI)."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from core.config import LoadedSettings, env_name, redacted
from core.settings import Settings
from retention_monitor import cohorts_cli
from retention_monitor import stack as stack_mod
from retention_monitor.exceptions import QueryError, StackError, UsageError
from retention_monitor.stack.config import StackConfig
from retention_monitor.worker_http import get_json


def stack(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    cfg = StackConfig.from_settings(loaded.settings)
    if args.action == "up":
        statuses = stack_mod.up(cfg, console)
    elif args.action == "down":
        stack_mod.down(cfg)
        statuses = stack_mod.status(cfg)
    else:
        statuses = stack_mod.status(cfg)
    code = 0 if args.action != "up" or all(s.running for s in statuses) else 3
    if getattr(args, "json", False):
        rows = [{"service": s.name, "running": s.running, "address": s.address, "pid": s.pid, "detail": s.detail}
                for s in statuses]
        console.print_json(data={"home": str(cfg.home), "services": rows})
        return code
    table = Table(title=f"local stack ({cfg.home})")
    for col in ("service", "running", "address", "pid", "detail"):
        table.add_column(col)
    for s in statuses:
        table.add_row(s.name, "yes" if s.running else "no", s.address, str(s.pid or ""), s.detail)
    console.print(table)
    return code


def worker(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    from streams.worker.main import run_worker

    settings = loaded.settings
    if args.web_port:
        settings = replace(settings, web_port=args.web_port)
    run_worker(settings)
    return 0


def base_url(settings: Settings) -> str:
    return f"http://{settings.web_host}:{settings.web_port}"


def fetch_kpis(url: str, period: str, segment: str, timeout: float = 10.0,
               headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``GET {url}/kpis``; raises :class:`QueryError` with a one-line reason."""
    return get_json(url, "/kpis", {"period": period, "segment": segment}, timeout, headers)




def _fmt(value: Any) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _pct(value: Any) -> str:
    return "undefined" if value is None else f"{100 * value:.1f} %"


def _money(value: Any, currency: str) -> str:
    return "undefined" if value is None else f"{value:,.2f} {currency}"


def _duration(stats: dict[str, Any]) -> str:
    if not stats["count"]:
        return "no samples"
    return " / ".join(f"{stats[k] / 3600:.1f} h" for k in ("p50", "p90", "p99"))


def kpi_table(answer: dict[str, Any], currency: str = "EUR") -> Table:
    """The KPI query answer as a table: each KPI with the inputs that recompute it."""
    period, k, i = answer["period"], answer["kpis"], answer["inputs"]
    table = Table(title=f"KPIs {period['label']} [{period['start']} .. {period['end']}) segment={answer['segment']}")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("from", style="dim")
    moved = f" - {i['moved_in']} moved in" if i["moved_in"] else ""
    rows = [
        ("retention rate", _pct(k["retention_rate"]), f"(E {i['E']} - N {i['N']}{moved}) / B {i['B']}"),
        ("churn rate", _pct(k["churn_rate"]), f"L {i['L']} / B {i['B']}"),
        ("win-back rate", _pct(k["winback_rate"]), f"R {i['R']} / (lost at start {i['lost_at_start']} + L {i['L']})"),
        ("active customers at end", str(i["E"]), f"B + N + R - L = {i['B']} + {i['N']} + {i['R']} - {i['L']}"),
        *((f"  lost: {reason}", str(n), "") for reason, n in k["lost_by_reason"].items()),
        ("repeat purchase rate", _pct(k["repeat_purchase_rate"]),
         f"{i['customers_ordering_2plus']} with >= 2 orders / {i['customers_ordering']} ordering"),
        ("  lifetime", _pct(k["repeat_purchase_rate_lifetime"]),
         f"{i['customers_ordered_2plus_to_date']} / {i['customers_ordered_to_date']} to date"),
        ("refund rate", _pct(k["refund_rate"]), f"{i['orders_refunded']} refunded / {i['orders']} orders"),
        ("return rate", _pct(k["return_rate"]), f"{i['orders_returned']} returned / {i['orders']} orders"),
        ("net revenue", _money(k["net_revenue"], currency),
         f"orders {i['order_amount']:,.2f} - refunds {i['refund_amount']:,.2f}"),
        ("historical CLV (mean)", _money(k["clv_historical_mean"], currency),
         f"net revenue to date / {i['customers_ordered_to_date']} customers with orders"),
        ("predicted CLV (mean)", _money(k["clv_predicted_mean"], currency),
         "monthly revenue per active / monthly churn, trailing 90 d"),
        ("NPS", "undefined" if k["nps"] is None else f"{k['nps']:.1f}",
         f"promoters {i['nps_promoters']}, passives {i['nps_passives']}, detractors {i['nps_detractors']}"),
        ("CSAT", _pct(k["csat"]), f"{i['csat_good']} scoring 4-5 / {i['csat_responses']} responses"),
        ("first response p50/p90/p99", _duration(k["first_response_seconds"]),
         f"{k['first_response_seconds']['count']} tickets"),
        ("resolution p50/p90/p99", _duration(k["resolution_seconds"]), f"{k['resolution_seconds']['count']} tickets"),
        ("tickets awaiting reply / resolution", f"{k['tickets_awaiting_first_response']} / "
         f"{k['tickets_awaiting_resolution']}", f"{k['reopens']} reopens"),
        ("complaints", str(k["complaints"]),
         ", ".join(f"{c} {n}" for c, n in k["complaints_by_category"].items()) or "none"),
        ("feedback response rate", _pct(k["feedback_response_rate"]),
         f"{i['feedback_responded']} answered / {i['feedback_received']} received"),
        ("sales-team retention", _pct(k["sales_rep_retention_rate"]),
         f"{i['reps_stayed']} of the {i['reps_at_start']} reps at the start stayed"),
        ("sales-team size ratio", _pct(k["sales_team_size_ratio"]),
         f"reps at end {i['reps_at_end']} / at start {i['reps_at_start']} ({i['reps_joined']} joined, "
         f"{i['reps_left']} left)"),
    ]
    for row in rows:
        table.add_row(*row)
    abc = answer["abc"]
    table.add_row("ABC customers A / B / C", " / ".join(str(abc["customers"][c]) for c in "ABC"),
                  "CLV share " + " / ".join(_pct(abc["clv_share"][c]) for c in "ABC"))
    return table


def kpis(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    url = args.url or base_url(loaded.settings)
    answer = fetch_kpis(url, args.period, args.segment, headers=loaded.settings.web.auth_header)
    if args.json:
        console.print_json(json.dumps(answer))
    else:
        console.print(kpi_table(answer, loaded.settings.currency))
    return 0


def publish(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    from streams.producers.publish import produce, read_jsonl

    settings = loaded.settings
    stats = asyncio.run(produce(settings.kafka, read_jsonl(settings.topics, Path(args.file)), rate=args.rate))
    console.print(f"published {stats.sent} messages in {stats.seconds:.1f}s "
                  f"({stats.sent / max(stats.seconds, 1e-9):,.0f}/s)")
    return 0


def _check_scenario(name: str) -> None:
    from streams.producers.scenarios import SCENARIOS

    if name not in SCENARIOS:
        raise UsageError(f"--scenario {name!r} is not one of {', '.join(SCENARIOS)}")


def simulate(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    from streams.producers.simulate import Simulator

    _check_scenario(args.scenario)
    sim = Simulator(loaded.settings.facts, loaded.settings.topics, seed=args.seed, scenario=args.scenario,
                    customers=args.customers, invalid_ratio=args.invalid_ratio)
    if args.output:
        return _simulate_to_file(args, sim, console)
    from streams.producers.publish import simulate_live

    stats = asyncio.run(simulate_live(loaded.settings.kafka, sim, rate=args.rate, duration_s=args.duration,
                                      count=args.count))
    console.print(f"published {stats.sent} simulated events in {stats.seconds:.1f}s")
    return 0


def _simulate_to_file(args: argparse.Namespace, sim: Any, console: Console) -> int:
    from core.errors import PeriodError
    from core.periods import to_us

    if args.start:
        from datetime import datetime

        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        except ValueError as exc:
            raise PeriodError(f"--start {args.start!r} is not an RFC 3339 timestamp") from exc
        if start.tzinfo is None:
            raise PeriodError(f"--start {args.start!r} needs an offset, e.g. 2025-01-01T00:00:00Z")
        start_us = to_us(start)
    else:
        start_us = time.time_ns() // 1000
    count = args.count or int(args.rate * (args.duration or 60))
    with Path(args.output).open("wb") as fh:
        for _topic, _key, value in sim.events(start_us=start_us, count=count, rate=args.rate):
            fh.write(value + b"\n")
    console.print(f"wrote {count} events to {args.output}")
    return 0


def schemas(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    from streams.contract import reference
    from streams.contract.schema import stale, write_all

    directory = Path(args.dir)
    if args.check:
        bad = stale(directory)
        if bad:
            console.print(f"stale JSON Schemas in {directory}: {', '.join(bad)}; run `retention-monitor schemas`")
            return 1
        if reference.stale():
            console.print(f"stale generated tables in {reference.DOC}; run `retention-monitor schemas`")
            return 1
        console.print(f"JSON Schemas in {directory} and the tables of {reference.DOC.name} are up to date")
        return 0
    written = write_all(directory)
    reference.write()
    console.print(f"wrote {len(written)} JSON Schema files to {directory} and the tables of {reference.DOC}")
    return 0


def config(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    # Passwords (and the password of a URL) are masked: this output ends up in tickets and chat.
    values = {name: redacted(name, value) for name, value in loaded.settings.to_dict().items()}
    if args.json:
        console.print_json(json.dumps({k: {"value": v, "source": loaded.sources[k]} for k, v in values.items()}))
        return 0
    table = Table(title="effective settings")
    for col in ("setting", "value", "from", "env variable"):
        table.add_column(col)
    for name, value in values.items():
        table.add_row(name, json.dumps(value), loaded.sources[name], env_name(name))
    console.print(table)
    return 0


def ready(answer: dict[str, Any]) -> bool:
    """A worker is ready when it owns partitions and has read the changelog up to its start."""
    worker = answer["worker"]
    return bool(worker["partitions"]) and bool(worker["caught_up"])


def wait_for_worker(url: str, deadline_s: float, proc: subprocess.Popen[bytes] | None = None,
                    headers: Mapping[str, str] | None = None) -> None:
    """Poll ``/kpis`` until the worker answers (and owns partitions) or the deadline passes."""
    end = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"the worker exited with code {proc.returncode} before it was ready")
        try:
            if ready(fetch_kpis(url, "2025", "all", timeout=2.0, headers=headers)):
                return
        except QueryError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise StackError(f"worker at {url} not ready after {deadline_s:.0f}s ({last})")


def processed_count(url: str, headers: Mapping[str, str] | None = None) -> int:
    """Messages a worker has finished with: applied (incl. duplicates) plus dead-lettered."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(urllib.request.Request(f"{url}/metrics", headers=dict(headers or {})),
                                timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name in ("retention_events", "retention_events_rejected"):
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return int(total)


def wait_for_processed(url: str, published: int, console: Console, timeout_s: float = 600,
                       headers: Mapping[str, str] | None = None) -> None:
    """Show the worker catching up until it has processed ``published`` messages."""
    from rich.progress import Progress

    end = time.monotonic() + timeout_s
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("worker catching up", total=published)
        while (done := processed_count(url, headers)) < published:
            progress.update(task, completed=done)
            if time.monotonic() > end:
                raise StackError(f"the worker processed {done} of {published} messages in {timeout_s:.0f}s")
            time.sleep(0.3)


def demo(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    from streams.producers import demo as traffic
    from streams.producers.publish import produce, simulate_live
    from streams.producers.simulate import Simulator

    _check_scenario(args.scenario)
    settings = loaded.settings
    cfg = StackConfig.from_settings(settings)
    stack_mod.up(cfg, console)
    log_path = cfg.home / "worker.log"
    url = base_url(settings)
    console.print(f"starting a worker (log: {log_path}) ...")
    cmd = [sys.executable, "-m", "retention_monitor.cli"]
    if args.config:
        cmd += ["--config", args.config]
    with log_path.open("ab") as log:
        proc = subprocess.Popen([*cmd, "worker"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_worker(url, 90, proc, settings.web.auth_header)
        now = time.time_ns() // 1000
        sim = Simulator(settings.facts, settings.topics, seed=int(now // 1_000_000), scenario="steady",
                        customers=args.customers)
        history = traffic.history(sim, now, args.history, args.scenario)
        console.print(f"publishing {len(history):,} events of history (a base of {args.customers:,} customers, "
                      f"then the last {traffic.HISTORY_DAYS} days) ...")
        asyncio.run(produce(settings.kafka, history, total=len(history)))
        traffic.go_live(sim, now, args.history, args.rate, args.scenario)
        console.print(f"publishing live traffic at {args.rate:.0f} events/s for {args.duration:.0f}s "
                      f"(scenario {args.scenario}) ...")
        live = asyncio.run(simulate_live(settings.kafka, sim, rate=args.rate, duration_s=args.duration))
        wait_for_processed(url, len(history) + live.sent, console, headers=settings.web.auth_header)
        _show_demo_results(settings, cfg, url, console)
    finally:
        if not args.keep:
            proc.terminate()
            proc.wait(timeout=30)
        else:
            console.print(f"the worker keeps running (pid {proc.pid}): stop it with `kill {proc.pid}`, "
                          "the stack with `retention-monitor stack down`")
    return 0


def _show_demo_results(settings: Settings, cfg: StackConfig, url: str, console: Console) -> None:
    from core.periods import from_us

    today = from_us(time.time_ns() // 1000).astimezone(settings.tz)
    month = f"{today.year}-{today.month:02d}"
    console.print(kpi_table(fetch_kpis(url, month, "all", headers=settings.web.auth_header), settings.currency))
    console.print(cohorts_cli.table(cohorts_cli.recent(url, today.year, today.month, 6, settings.web.auth_header)))
    console.print("Where to look:")
    console.print(f"  metrics     {url}/metrics")
    console.print(f"  cohorts     retention-monitor cohorts --from {today.year - 1}-{today.month:02d}  "
                  "(--kind revenue: net revenue retention)")
    console.print(f"  KPI query   {url}/kpis?period={month}&segment=plan:pro  "
                  f"or  retention-monitor kpis --period {today.year}-Q{(today.month - 1) // 3 + 1}")
    console.print(f"  Prometheus  http://127.0.0.1:{cfg.prometheus_port}/graph?g0.expr=retention_customer_churn_ratio")
    console.print(f"  Alertmanager http://127.0.0.1:{cfg.alertmanager_port}")
