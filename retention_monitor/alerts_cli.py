"""The handlers of ``retention-monitor alerts list | check | prometheus``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from alerts import prometheus
from alerts.rules import DEFAULT_RULES, Rule, load_rules
from core.config import LoadedSettings
from retention_monitor.worker_http import get_json


def rules_path(loaded: LoadedSettings, explicit: str | None = None) -> Path:
    """``explicit``, else the ``alert_rules`` setting, else the shipped ``alerts/rules.yml``."""
    if explicit:
        return Path(explicit)
    return Path(loaded.settings.alert_rules) if loaded.settings.alert_rules else DEFAULT_RULES


def condition(rule: Rule) -> str:
    """A rule's condition as one line of text, e.g. ``nps < nps[90d] - 15 (n >= 30)``."""
    if rule.kind == "static":
        text = f"{rule.kpi} {rule.op} {rule.threshold:g}"
    elif rule.kind == "change":
        base = f"{rule.kpi}[{rule.baseline_window}]"
        if rule.scale_to_window and rule.window != rule.baseline_window:
            base = f"{base} * {rule.window}/{rule.baseline_window}"
        if rule.factor != 1:
            base = f"{rule.factor:g} * {base}"
        if rule.delta:
            base = f"{base} {'+' if rule.delta > 0 else '-'} {abs(rule.delta):g}"
        text = f"{rule.kpi} {rule.op} {base}"
    elif rule.kind == "cohort":
        text = (f"{rule.kpi} at age {rule.age}: the newest {rule.newest} completed {rule.window} cohorts "
                f"{rule.op} {rule.threshold:.0%} below the previous {rule.previous}")
        if rule.min_customers:
            text += f" (each >= {rule.min_customers} customers)"
    else:
        sign = "+" if rule.op.startswith(">") else "-"
        text = f"{rule.kpi} {rule.op} mean {sign} {rule.z:g} sd of the last {rule.buckets} x {rule.window}"
    if rule.min_samples:
        text += f" (n >= {rule.min_samples})"
    return text


def alerts_list(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    path = rules_path(loaded, getattr(args, "file", None))
    rules = load_rules(path)
    if getattr(args, "json", False):
        console.print_json(data={"file": str(path), "rules": [
            {"name": r.name, "kind": r.kind, "kpi": r.kpi, "window": r.window, "segments": list(r.segments),
             "condition": condition(r), "for": r.for_, "severity": r.severity,
             "prometheus": prometheus.expressible(r)} for r in rules]})
        return 0
    table = Table(title=f"alert rules ({path})")
    for col in ("name", "kind", "kpi", "window", "segments", "condition", "for", "severity", "prometheus"):
        table.add_column(col)
    for r in rules:
        table.add_row(r.name, r.kind, r.kpi, r.window, ", ".join(r.segments), condition(r), r.for_, r.severity,
                      "yes" if prometheus.expressible(r) else "stream only")
    console.print(table)
    return 0


def alerts_check(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    """Validate a rule file; a bad one raises :class:`alerts.rules.RuleError` (the CLI exits 2)."""
    path = rules_path(loaded, getattr(args, "file", None))
    rules = load_rules(path)
    console.print(f"{path}: {len(rules)} rules OK", highlight=False)
    return 0


def alerts_prometheus(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    """Write the Prometheus alerting rules of the alert rules, or with ``--check`` exit 1 if they are stale."""
    source = rules_path(loaded, getattr(args, "rules", None))
    output = Path(getattr(args, "output", None) or prometheus.DEFAULT_OUTPUT)
    grafana_url = loaded.settings.grafana_url
    if getattr(args, "check", False):
        if prometheus.stale(output, source, grafana_url):
            console.print(f"{output} is stale; run `retention-monitor alerts prometheus`", highlight=False)
            return 1
        console.print(f"{output} is up to date", highlight=False)
        return 0
    prometheus.write(output, source, grafana_url)
    console.print(f"wrote {output}", highlight=False)
    if loaded.settings.alert_path == "stream":  # writing the file switches nothing: say who pages
        console.print("alert_path = stream: the workers page for these rules; load this file into Prometheus only "
                      "with alert_path = prometheus or both (docs/operations.md, Which path pages)", highlight=False)
    return 0


def alerts_test(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    """Which rules would fire at the end of ``--period`` on a running worker's data, and why."""
    url = args.url or f"http://{loaded.settings.web_host}:{loaded.settings.web_port}"
    answer = get_json(url, "/alerts", {"period": args.period}, timeout=30, headers=loaded.settings.web.auth_header)
    if args.json:
        console.print_json(json.dumps(answer))
        return 0
    table = Table(title=f"alert rules at the end of {answer['period']['label']} ({answer['period']['end']})")
    for col in ("rule", "segment", "would fire", "value", "baseline / z", "samples", "why"):
        table.add_column(col)
    for r in answer["rules"]:
        why = _why(r)
        base = r["z_score"] if r["kind"] == "anomaly" else r["baseline"]
        table.add_row(r["rule"], r["segment"], "[red]yes" if r["would_fire"] else "no", _num(r["value"]),
                      _num(base), str(r["samples"]), why)
    console.print(table)
    return 0


def _why(row: dict[str, Any]) -> str:
    """Why a rule of ``alerts test`` would fire or not, in a few words."""
    if not row["undefined"]:
        why = "condition holds" if row["would_fire"] else "condition does not hold"
        if row["kind"] == "cohort":
            why += f" (drop {row['drop']:.1%}, cohorts {', '.join(row['cohorts'])})"
        return why
    if row["kind"] == "cohort":
        if not row["cohorts"]:
            return "too few completed cohorts"
        if row["samples"] < row["min_customers"]:
            return f"a cohort of only {row['samples']} customers < {row['min_customers']}"
        return "undefined retention"
    return "undefined KPI" if row["value"] is None else f"only {row['samples']} samples < {row['min_samples']}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
