"""``retention-monitor``: the command line (stack, worker, traffic, KPI query, schemas, config).

Exit codes: 0 success, 1 a check failed (e.g. stale schemas), 2 bad input or configuration (also a
question the worker refuses, HTTP 4xx), 3 a service is unreachable or cannot answer now (HTTP 5xx).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.markup import escape

from core.config import LoadedSettings, load_settings
from core.errors import ConfigError, PeriodError, RetentionMonitorError
from retention_monitor.exceptions import BadRequest, QueryError, StackError, UsageError
from streams.exceptions import BrokerUnreachable

EXIT_OK, EXIT_CHECK, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

# Extras of pyproject.toml -> the modules they bring that commands import (the worker needs none of them).
_EXTRA_MODULES = {"report": ("matplotlib",), "dev": ("packaging",)}
Handler = Callable[[argparse.Namespace, LoadedSettings, Console], int]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="retention-monitor",
        description="Streaming monitor for customer-retention KPIs (Kafka, Faust, Prometheus, Alertmanager).",
        epilog="Every command that reads something (kpis, cohorts, at-risk, report, config show, stack, alerts list, "
        "alerts test, replay, dlq) prints a table, or JSON with --json. Exit codes: 0 ok, 1 a check failed (stale "
        "generated files, a dry run that would reject), 2 bad input or configuration (also a question the worker "
        "refuses), 3 a service is unreachable or cannot answer now, 130 interrupted. "
        "`retention-monitor COMMAND --help` for each command.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config file (default: $RETENTION_CONFIG or "
                   "./retention-monitor.toml); RETENTION_* variables override it; also after the command")
    p.add_argument("--version", action="version", version=f"retention-monitor {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for add in (_add_services, _add_traffic, _add_alerts, _add_at_risk, _add_cohorts, _add_dashboards, _add_report,
                _add_replay, _add_dlq, _add_deploy, _add_demo):
        add(sub)
    return p


def _add_services(sub: Any) -> None:
    stack = sub.add_parser("stack", help="start/stop the local Kafka, Redis, Prometheus, Alertmanager",
                           description="The local stack on 127.0.0.1, installed and started by the project itself "
                           "(Kafka from Maven Central jars, Redis, Prometheus and Alertmanager from Debian). "
                           "up and down are idempotent. Exit 3 when a service does not come up.")
    stack.add_argument("action", choices=["up", "down", "status"], help="up: install and start; down: stop; "
                       "status: what runs where")
    stack.add_argument("--json", action="store_true", help="print the services as JSON")

    worker = sub.add_parser("worker", help="run a monitor worker (joins the consumer group)")
    worker.add_argument("--web-port", type=_port, help="HTTP port for /metrics and /kpis (default: web_port)")

    kpis = sub.add_parser("kpis", help="KPIs of any period, from a running worker")
    kpis.add_argument("--period", required=True, help="2025, 2025-Q1, 2025-03, 2025-W07, 2025-03-14 or START/END")
    kpis.add_argument("--segment", default="all", help="all or DIMENSION:VALUE, e.g. plan:pro (default: all)")
    kpis.add_argument("--url", help="worker base URL (default: http://web_host:web_port)")
    kpis.add_argument("--json", action="store_true", help="print the raw JSON answer")


def _add_traffic(sub: Any) -> None:
    pub = sub.add_parser("publish", help="publish a JSONL file of events to Kafka (routed by type)")
    pub.add_argument("file")
    pub.add_argument("--rate", type=_positive_float, help="events per second (default: as fast as possible)")

    sim = sub.add_parser("simulate", help="publish realistic simulated traffic (seeded)")
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--scenario", default="steady",
                     help="steady, churn-spike, nps-drop, complaint-surge, cohort-decay")
    sim.add_argument("--rate", type=_positive_float, default=200.0, help="events per second (default: 200)")
    sim.add_argument("--duration", type=_positive_float, help="seconds of live traffic (default: until Ctrl-C)")
    sim.add_argument("--count", type=_positive_int, help="number of events instead of a duration")
    sim.add_argument("--customers", type=_positive_int, default=5000, help="customer population (default: 5000)")
    sim.add_argument("--invalid-ratio", type=_ratio, default=0.0, help="share of malformed messages (0-1)")
    sim.add_argument("--output", metavar="FILE", help="write JSONL to FILE instead of Kafka (as fast as possible)")
    sim.add_argument("--start", help="event time of the first event (RFC 3339) for --output; default now")

    schemas = sub.add_parser("schemas", help="write (or --check) the JSON Schema files for publishers")
    schemas.add_argument("--check", action="store_true", help="exit 1 if the checked-in files are stale")
    schemas.add_argument("--dir", default="schemas", help="output directory (default: schemas)")

    config = sub.add_parser("config", help="show the effective settings and where each came from")
    config.add_argument("action", choices=["show"])
    config.add_argument("--json", action="store_true")


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser("demo", help="stack up, a worker, simulated traffic; prints where to look")
    demo.add_argument("--duration", type=_positive_float, default=30.0, help="seconds of live traffic (default: 30)")
    demo.add_argument("--rate", type=_positive_float, default=200.0, help="live events per second (default: 200)")
    demo.add_argument("--history", type=_positive_int, default=30_000,
                      help="events of history over the last 90 days, published first (default: 30000)")
    demo.add_argument("--customers", type=_positive_int, default=3000, help="customer population (default: 3000)")
    demo.add_argument("--scenario", default="steady",
                      help="steady, churn-spike, nps-drop, complaint-surge (live traffic), cohort-decay "
                           "(history and live traffic) (default: steady)")
    demo.add_argument("--keep", action="store_true", help="leave the worker running afterwards")


def _add_alerts(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="alert rules: list them, check a rule file, export Prometheus rules")
    alerts_sub = alerts.add_subparsers(dest="alerts_action", required=True, metavar="ACTION")
    a_list = alerts_sub.add_parser("list", help="the alert rules as a table (or --json)")
    a_list.add_argument("--json", action="store_true", help="print the rules as JSON")
    a_list.add_argument("file", nargs="?", help="rule file (default: alert_rules, else the shipped alerts/rules.yml)")
    a_list.set_defaults(command="alerts list")
    a_check = alerts_sub.add_parser("check", help="validate a rule file (exit 2 with the first problem)")
    a_check.add_argument("file", nargs="?", help="rule file (default: alert_rules, else the shipped alerts/rules.yml)")
    a_check.set_defaults(command="alerts check")
    a_test = alerts_sub.add_parser("test", help="which rules would fire at the end of a period, and why")
    a_test.add_argument("--period", required=True, help="2025-Q1, 2025-03-14, START/END …")
    a_test.add_argument("--url", help="worker base URL (default: http://web_host:web_port)")
    a_test.add_argument("--json", action="store_true", help="print the raw JSON answer")
    a_test.set_defaults(command="alerts test")
    a_prom = alerts_sub.add_parser("prometheus", help="write (or --check) the Prometheus alerting rules")
    a_prom.add_argument("--check", action="store_true", help="exit 1 if the checked-in file is stale")
    a_prom.add_argument("--rules", metavar="FILE", help="rule file (default: alert_rules, else alerts/rules.yml)")
    a_prom.add_argument("--output", metavar="FILE",
                        help="default: deploy/prometheus/rules/retention-alerts.yml of the source tree")
    a_prom.set_defaults(command="alerts prometheus")


def _add_at_risk(sub: Any) -> None:
    from retention_monitor import at_risk_cli  # small: rich and urllib only (worker_http)

    at_risk_cli.add_parser(sub)


def _add_dlq(sub: Any) -> None:
    from retention_monitor import dlq_cli  # its Kafka modules load when a dlq command runs, not for every command

    dlq_cli.add_parser(sub)


def _add_cohorts(sub: Any) -> None:
    from retention_monitor import cohorts_cli  # small: rich and urllib only (worker_http)

    cohorts_cli.add_parser(sub)


def _add_dashboards(sub: Any) -> None:
    dash = sub.add_parser("dashboards", help="Grafana dashboards as code: generate (or --check) the JSON, push it")
    dash_sub = dash.add_subparsers(dest="dashboards_action", required=True, metavar="ACTION")
    d_gen = dash_sub.add_parser("generate", help="write (or --check) the dashboards (deploy/grafana/dashboards, "
                                "deploy/grafana/import) and their recording rules (deploy/prometheus/rules)")
    d_gen.add_argument("--check", action="store_true", help="exit 1 if the checked-in files are stale")
    d_gen.add_argument("--dir", help="root of the generated files (default: deploy/ of the source tree)")
    d_gen.set_defaults(command="dashboards generate")
    d_push = dash_sub.add_parser("push", help="create or update the dashboards in a running Grafana (overwrite)")
    d_push.add_argument("--url", help="Grafana base URL (default: the grafana_url setting)")
    d_push.add_argument("--token", help="Grafana service-account token (default: $GRAFANA_TOKEN)")
    d_push.add_argument("--folder", metavar="NAME", help="the folder to push into, created when missing "
                        "(default: Grafana's General folder)")
    d_push.set_defaults(command="dashboards push")


def _add_deploy(sub: Any) -> None:
    dep = sub.add_parser("deploy", help="generated deployment files: Kubernetes manifests, constraints.txt")
    dep_sub = dep.add_subparsers(dest="deploy_action", required=True, metavar="ACTION")
    gen = dep_sub.add_parser("generate", help="write (or --check) the PrometheusRule and dashboard ConfigMaps "
                             "of deploy/k8s/ from deploy/prometheus/rules/ and deploy/grafana/dashboards/")
    gen.add_argument("--check", action="store_true", help="exit 1 if the checked-in files are stale")
    gen.add_argument("--dir", help="output directory (default: deploy/k8s of the source tree)")
    gen.set_defaults(command="deploy generate")
    con = dep_sub.add_parser("constraints", help="write (or --check) constraints.txt: the exact versions installed "
                             "here of every requirement of the project and its extras")
    con.add_argument("--check", action="store_true", help="exit 1 if the file pins other versions than installed")
    con.add_argument("--output", metavar="FILE", help="default: constraints.txt of the source tree")
    con.set_defaults(command="deploy constraints")


def _add_report(sub: Any) -> None:
    rep = sub.add_parser("report", help="a period's KPIs against the previous period and a year earlier, "
                         "with trend plots, as Markdown or HTML")
    rep.add_argument("--period", required=True, help="2025, 2025-Q1, 2025-03, 2025-W07, 2025-03-14 or START/END")
    rep.add_argument("--segment", default="all", help="all, DIMENSION:VALUE or abc:A|B|C (default: all)")
    rep.add_argument("--format", help="md or html (default: md for an --output ending in .md, else html)")
    rep.add_argument("--output", metavar="FILE", help="default: ./retention-report-PERIOD.FORMAT; Markdown "
                     "writes its plots as PNG files next to it, HTML embeds them")
    rep.add_argument("--url", help="worker base URL (default: http://web_host:web_port)")
    rep.add_argument("--json", action="store_true", help="print the KPI comparison as JSON instead of a document")


def _add_replay(sub: Any) -> None:
    rep = sub.add_parser(
        "replay", help="backfill history from a CSV export (with a column mapping) or a JSONL file of events",
        description="Replays a CSV export (a shop's orders, a help desk's tickets...) through a column mapping, "
        "or a JSONL file of CloudEvents (sent byte for byte), routed by type like publish. Every event is checked "
        "like the worker checks it; rejected rows are not sent and are summed up by reason. Event ids are "
        "deterministic (an id column, else a hash of the file name and the row's mapped cells), so replaying a "
        "file twice or resuming counts nothing twice. An interrupted replay resumes where Kafka stopped "
        "acknowledging; a few rows may be sent twice, which is harmless. See docs/replay.md.")
    rep.add_argument("file", help="a CSV export (needs a mapping) or a .jsonl file of CloudEvents")
    rep.add_argument("--mapping", metavar="FILE.toml", help="column mapping (see examples/shop-orders.toml)")
    rep.add_argument("--type", help="event type of every row, e.g. order.placed (instead of or over --mapping)")
    rep.add_argument("--map", action="append", metavar="FIELD=COLUMN",
                     help="where a field comes from: time, id, source, a data field or segment.DIMENSION; repeat")
    rep.add_argument("--const", action="append", metavar="FIELD=VALUE", help="a constant field, e.g. currency=EUR")
    rep.add_argument("--delimiter", metavar="CHAR", help="CSV delimiter: one character or 'tab' (default: ,)")
    rep.add_argument("--decimal", metavar="MARK", help="decimal mark of numbers in the file: . or , (default: .)")
    rep.add_argument("--time-format", metavar="FORMAT", help="strptime format like %%d.%%m.%%Y, or unix / unix_ms "
                     "(default: RFC 3339 / ISO 8601; no offset = the timezone setting)")
    rep.add_argument("--encoding", help="file encoding (default: utf-8-sig), e.g. cp1252")
    rep.add_argument("--id-seed", metavar="TEXT",
                     help="used instead of the file name in hashed ids (keep ids of a renamed export)")
    rep.add_argument("--dry-run", action="store_true", help="publish nothing; report what would be rejected, "
                     "and why (exit 1 if anything would be)")
    rep.add_argument("--restart", action="store_true", help="ignore the checkpoint and replay from the first row")
    rep.add_argument("--limit", type=_positive_int, metavar="N",
                     help="stop after N rows (resume later with the same command)")
    rep.add_argument("--rate", type=_positive_float, metavar="N",
                     help="events per second (default: as fast as possible)")
    rep.add_argument("--checkpoint", metavar="FILE",
                     help="checkpoint file (default: under data_dir/app_id/replays/, one per file)")
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number > 0")
    return int(text)


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a ratio between 0 and 1")
    return value


def _version() -> str:
    try:
        return importlib.metadata.version("retention-monitor")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def global_first(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--config FILE`` moved before the command, so it may stand anywhere."""
    rest: list[str] = []
    front: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" and i + 1 < len(argv):
            front += argv[i:i + 2]
            i += 2
            continue
        (front if arg.startswith("--config=") else rest).append(arg)
        i += 1
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(global_first(sys.argv[1:] if argv is None else argv))
    console = Console(stderr=False)
    err = Console(stderr=True)
    try:
        loaded = load_settings(args.config)
        return _handler(args.command)(args, loaded, console)
    except (ConfigError, PeriodError, UsageError, BadRequest) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except (StackError, QueryError, BrokerUnreachable) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_UNREACHABLE
    except RetentionMonitorError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _import_extra(module: str, extra: str) -> ModuleType:
    """``module``, or a one-line error naming the extra that brings what it needs and is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in _EXTRA_MODULES[extra]:
            raise
        raise UsageError(f"this command needs {missing}, which is not installed: "
                         f"pip install 'retention-monitor[{extra}]'") from exc


def _handler(command: str) -> Handler:
    if command.startswith("dashboards "):
        # grafana-client (and niquests) cost ~0.3 s to import: only for these commands
        from retention_monitor import dashboards

        return {"dashboards generate": dashboards.dashboards_generate,
                "dashboards push": dashboards.dashboards_push}[command]
    if command == "report":
        # matplotlib (the `report` extra) costs ~0.3 s to import: only for this command
        report: Any = _import_extra("retention_monitor.report", "report")
        handler: Handler = report.report_command
        return handler
    if command.startswith("deploy "):
        deploy: Any = _import_extra("retention_monitor.deploy", "dev")
        deploy_handlers: dict[str, Handler] = {"deploy generate": deploy.deploy_generate,
                                               "deploy constraints": deploy.deploy_constraints}
        return deploy_handlers[command]
    if command.startswith("dlq "):
        from retention_monitor import dlq_cli

        return {"dlq list": dlq_cli.dlq_list, "dlq show": dlq_cli.dlq_show, "dlq redrive": dlq_cli.dlq_redrive}[command]
    from retention_monitor import alerts_cli, at_risk_cli, cohorts_cli, commands, replay_cli

    handlers: dict[str, Handler] = {
        "stack": commands.stack,
        "worker": commands.worker,
        "kpis": commands.kpis,
        "publish": commands.publish,
        "simulate": commands.simulate,
        "schemas": commands.schemas,
        "config": commands.config,
        "demo": commands.demo,
        "alerts list": alerts_cli.alerts_list,
        "alerts check": alerts_cli.alerts_check,
        "alerts prometheus": alerts_cli.alerts_prometheus,
        "alerts test": alerts_cli.alerts_test,
        "at-risk": at_risk_cli.at_risk,
        "cohorts": cohorts_cli.cohorts,
        "replay": replay_cli.replay,
    }
    return handlers[command]


if __name__ == "__main__":
    sys.exit(main())
