"""Alert rules as code: one YAML file, validated on load (one-line errors naming rule and field).

Design notes: docs/architecture.md, "alerts/rules.py".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from alerts.catalog import COHORT, KPIS, LIVE
from alerts.exceptions import RuleError
from core.periods import ROLLING
from core.settings import Settings, parse_duration
from metrics.cohort_grid import UNITS

DEFAULT_RULES = Path(__file__).with_name("rules.yml")
Kind = Literal["static", "change", "anomaly", "cohort"]
KINDS = ("static", "change", "anomaly", "cohort")
MAX_COHORTS_BACK = 120  # age + newest + previous: ten years of months, two of weeks
Op = Literal[">", ">=", "<", "<="]
_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{2,80}$")
_SEGMENT = re.compile(r"^(all|[a-z0-9_.-]+:([a-z0-9_.-]+|\*))$")


@dataclass(frozen=True)
class Rule:
    """One alert rule; see the module docstring for the kinds."""

    name: str
    kpi: str
    window: str
    op: Op
    severity: Literal["critical", "warning", "info"]
    summary: str
    kind: Kind = "static"
    threshold: float = 0.0
    segments: tuple[str, ...] = ("all",)
    baseline_window: str | None = None
    factor: float = 1.0
    delta: float = 0.0
    scale_to_window: bool = False
    buckets: int = 0
    z: float = 3.0
    min_samples: int = 0
    age: int = 0
    newest: int = 0
    previous: int = 0
    min_customers: int = 0
    for_: str = "0s"
    keep_firing_for: str = "0s"
    description: str = ""
    runbook_url: str = ""
    dashboard_url: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def for_seconds(self) -> int:
        return parse_duration(self.for_)

    @property
    def keep_firing_seconds(self) -> int:
        return parse_duration(self.keep_firing_for)

    @property
    def window_seconds(self) -> int:
        return ROLLING.get(self.window, 0) * 86_400


_FIELDS = {f.name.rstrip("_"): f.name for f in fields(Rule)}
_REQUIRED = ("name", "kpi", "window", "op", "severity", "summary")


def load_rules(path: Path = DEFAULT_RULES, grafana_url: str = Settings.grafana_url) -> list[Rule]:
    """Read and validate ``path``; raise :class:`RuleError` with a one-line message on the first problem.

    A ``dashboard_url`` that is a path (``/d/retention-overview``) is made absolute under ``grafana_url``,
    so one rule file serves every Grafana."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise RuleError(f"{path}: expected a mapping with a 'rules' list")
    rules = [_linked(parse_rule(raw, i, path), grafana_url) for i, raw in enumerate(doc["rules"])]
    names = [r.name for r in rules]
    for name in names:
        if names.count(name) > 1:
            raise RuleError(f"{path}: rule {name}: name: used by more than one rule")
    return rules


def _linked(rule: Rule, grafana_url: str) -> Rule:
    if not rule.dashboard_url.startswith("/"):
        return rule
    return replace(rule, dashboard_url=grafana_url.rstrip("/") + rule.dashboard_url)


def parse_rule(raw: Any, index: int, path: Path | str = "rules") -> Rule:
    where = f"{path}: rule #{index + 1}"
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be a mapping")
    if isinstance(raw.get("name"), str):
        where = f"{path}: rule {raw['name']}"
    for key in raw:
        if key not in _FIELDS:
            raise RuleError(f"{where}: {key}: unknown field; allowed: {', '.join(sorted(_FIELDS))}")
    for key in _REQUIRED:
        if key not in raw:
            raise RuleError(f"{where}: {key}: missing")
    values = {_FIELDS[k]: v for k, v in raw.items()}
    if "segments" in values:
        segs = values["segments"]
        values["segments"] = tuple(segs) if isinstance(segs, list) else segs
    try:
        rule = Rule(**values)
    except TypeError as exc:
        raise RuleError(f"{where}: {exc}") from exc
    _check(rule, where)
    return rule


def _fail(where: str, field_name: str, value: Any, allowed: str) -> RuleError:
    return RuleError(f"{where}: {field_name}={value!r}: {allowed}")


def _check(r: Rule, where: str) -> None:
    kpis = [*KPIS, *LIVE, *COHORT]
    checks: list[tuple[bool, str, Any, str]] = [
        (isinstance(r.name, str) and bool(_NAME.match(r.name)), "name", r.name, "must be CamelCase, e.g. ChurnHigh"),
        (r.kind in KINDS, "kind", r.kind, f"must be {', '.join(KINDS[:-1])} or {KINDS[-1]}"),
        (r.kpi in kpis, "kpi", r.kpi, f"must be one of {', '.join(kpis)}"),
        (r.window in ROLLING or r.kpi in LIVE or r.kind == "cohort" or r.kpi in COHORT, "window", r.window,
         f"must be one of {', '.join(ROLLING)}"),
        (r.op in (">", ">=", "<", "<="), "op", r.op, "must be >, >=, < or <="),
        (r.severity in ("critical", "warning", "info"), "severity", r.severity, "must be critical, warning or info"),
        (isinstance(r.segments, tuple) and all(isinstance(s, str) and _SEGMENT.match(s) for s in r.segments)
         and bool(r.segments), "segments", r.segments, "must be a list of all, DIMENSION:VALUE or DIMENSION:*"),
        (_number(r.threshold), "threshold", r.threshold, "must be a number"),
        (_number(r.factor) and _number(r.delta), "factor", (r.factor, r.delta), "factor and delta must be numbers"),
        (_count(r.min_samples), "min_samples", r.min_samples, "must be an integer >= 0"),
        (isinstance(r.summary, str) and bool(r.summary), "summary", r.summary, "must be a non-empty template"),
        *_kind_checks(r),
    ]
    for ok, name, value, allowed in checks:
        if not ok:
            raise _fail(where, name, value, allowed)
    for name in ("for_", "keep_firing_for"):
        try:
            parse_duration(getattr(r, name))
        except (ValueError, AttributeError) as exc:
            raise _fail(where, name.rstrip("_"), getattr(r, name), "must be a duration like 0s, 5m or 1h") from exc


def _kind_checks(r: Rule) -> list[tuple[bool, str, Any, str]]:
    """What a rule's kind, or its KPI, asks of the other fields."""
    checks: list[tuple[bool, str, Any, str]] = []
    if r.kpi in LIVE:
        checks += [(r.window == "now", "window", r.window, f"{r.kpi} is counted now: window must be now"),
                   (r.kind == "static", "kind", r.kind, f"{r.kpi} is counted now: only static rules"),
                   (r.segments == ("all",), "segments", r.segments, f"{r.kpi} exists for segment all only")]
    if r.kind == "change":
        checks.append((r.baseline_window in ROLLING, "baseline_window", r.baseline_window,
                       f"change rules need one of {', '.join(ROLLING)}"))
    if r.kind == "anomaly":
        checks.append((isinstance(r.buckets, int) and 3 <= r.buckets <= 400, "buckets", r.buckets,
                       "anomaly rules need 3-400 trailing buckets"))
        checks.append((_number(r.z) and r.z > 0, "z", r.z, "must be a number > 0"))
    if r.kind == "cohort" or r.kpi in COHORT:
        checks += _cohort_checks(r)
    else:
        checks.append((r.min_customers == 0, "min_customers", r.min_customers,
                       "only cohort rules count customers per cohort; use min_samples"))
    return checks


def _cohort_checks(r: Rule) -> list[tuple[bool, str, Any, str]]:
    """A cohort rule compares the newest cohorts that have completed age ``age`` with the ones before them."""
    checks: list[tuple[bool, str, Any, str]] = [
        (r.kind == "cohort", "kind", r.kind, f"{r.kpi} is read from cohort tables: kind must be cohort"),
        (r.kpi in COHORT, "kpi", r.kpi, f"cohort rules need one of {', '.join(COHORT)}"),
        (r.window in UNITS, "window", r.window, f"cohort rules need the cohort period: one of {', '.join(UNITS)}"),
        (r.op in (">", ">="), "op", r.op, "cohort rules fire on a drop: op must be > or >="),
        (_number(r.threshold) and 0 < r.threshold < 1, "threshold", r.threshold,
         "cohort rules need the relative drop between 0 and 1, e.g. 0.2"),
        (_count(r.age), "age", r.age, "must be an integer >= 0 (periods after the sign-up period)"),
        (_count(r.newest) and r.newest >= 1, "newest", r.newest, "must be an integer >= 1 (cohorts compared)"),
        (_count(r.previous) and r.previous >= 1, "previous", r.previous,
         "must be an integer >= 1 (cohorts of the baseline)"),
        (_count(r.min_customers), "min_customers", r.min_customers, "must be an integer >= 0"),
        (r.min_samples == 0, "min_samples", r.min_samples,
         "cohort rules count customers per cohort: use min_customers"),
    ]
    if all(_count(n) for n in (r.age, r.newest, r.previous)):
        span = r.age + r.newest + r.previous
        checks.append((span <= MAX_COHORTS_BACK, "age", (r.age, r.newest, r.previous),
                       f"age + newest + previous must be at most {MAX_COHORTS_BACK} periods"))
    return checks


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
