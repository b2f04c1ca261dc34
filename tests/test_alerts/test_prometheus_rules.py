"""The Prometheus side of the alert rules: generated file, promtool/amtool checks and unit tests, the CLI handlers."""

from __future__ import annotations

import argparse
import dataclasses
import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from alerts import prometheus
from alerts.engine import to_alert
from alerts.evaluate import Observation
from alerts.exceptions import RuleError
from alerts.rules import Rule, load_rules, parse_rule
from core.config import LoadedSettings
from core.settings import Settings
from retention_monitor.alerts_cli import alerts_check, alerts_list, alerts_prometheus, condition

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES_DIR = DEPLOY / "prometheus" / "rules"
TESTS_DIR = DEPLOY / "prometheus" / "tests"

# promtool and amtool come with the Debian packages `retention-monitor stack up` installs (./run test).


def run(*cmd: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def rule(**fields: Any) -> Rule:
    base = {"name": "TestRule", "kpi": "churn_rate", "window": "30d", "op": ">", "threshold": 0.05,
            "severity": "critical", "summary": "churn {value:.1%} in {segment}"}
    return parse_rule({**base, **fields}, 0)


def rendered(*rules: Rule) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(prometheus.render(list(rules)))
    return doc


def settings() -> LoadedSettings:
    return LoadedSettings(Settings(), {})


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


# --- the checked-in files ---------------------------------------------------------------------------------


def test_generated_rules_are_up_to_date() -> None:
    path = RULES_DIR / "retention-alerts.yml"
    assert path == prometheus.DEFAULT_OUTPUT
    assert path.read_text(encoding="utf-8") == prometheus.render(load_rules()), \
        "stale: run `retention-monitor alerts prometheus`"
    assert not prometheus.stale()


def test_every_alert_has_severity_summary_and_runbook() -> None:
    names = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for r in group["rules"]:
                if "record" in r:  # the dashboards' recording rules (tests/test_retention_monitor)
                    continue
                names.append(r["alert"])
                assert r["labels"]["severity"] in ("critical", "warning", "info"), r["alert"]
                assert r["annotations"]["summary"], r["alert"]
                assert r["annotations"]["runbook_url"].startswith("https://"), r["alert"]
    assert {"RetentionMonitorDown", "RetentionDeadLetterRate", "RetentionConsumerLag", "RetentionKpisStale",
            "ChurnRateHigh", "ChurnSpike", "NpsDrop"} <= set(names)
    assert len(names) == len(set(names))


def test_rule_tests_are_outside_the_rule_files_glob() -> None:
    assert TESTS_DIR.is_dir()
    assert not any(p.parent == RULES_DIR for p in TESTS_DIR.glob("*.yml"))
    assert not list(RULES_DIR.glob("*test*"))


def test_promtool_check_rules() -> None:
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    assert len(files) >= 2
    run("promtool", "check", "rules", *files)


def test_promtool_test_rules() -> None:
    files = sorted(str(p) for p in TESTS_DIR.glob("*.yml"))
    assert len(files) >= 2
    run("promtool", "test", "rules", *files)


def test_promtool_check_config() -> None:
    # compose/prometheus.yml names files under /etc/prometheus: test_compose_config_loads_the_rules checks it
    output = run("promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    for loaded in ("meta.yml", "retention-recording.yml"):  # the meta-alerts and what the dashboards read
        assert f"rules/{loaded}" in output


@pytest.mark.parametrize("opt_in", [False, True])
def test_compose_config_loads_the_rules(tmp_path: Path, opt_in: bool) -> None:
    """docker-compose mounts deploy/prometheus/rules at /etc/prometheus/rules: check it with the rules in place.
    The KPI alerts are loaded only when their line is uncommented (RETENTION_ALERT_PATH=prometheus or both)."""
    text = (DEPLOY / "compose" / "prometheus.yml").read_text(encoding="utf-8")
    kpi_line = "  # - /etc/prometheus/rules/retention-alerts.yml\n"
    assert "  - /etc/prometheus/rules/meta.yml\n" in text
    assert kpi_line in text
    if opt_in:
        text = text.replace(kpi_line, kpi_line.replace("# ", ""))
    shutil.copytree(RULES_DIR, tmp_path / "rules")
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/rules/", "rules/"), encoding="utf-8")
    done = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    for loaded in ("meta.yml", "retention-recording.yml"):
        assert loaded in done.stdout + done.stderr
    assert ("retention-alerts.yml" in done.stdout + done.stderr) == opt_in


def test_amtool_check_config() -> None:
    run("amtool", "check-config", str(DEPLOY / "alertmanager.yml"))


# --- render -----------------------------------------------------------------------------------------------


def test_render_header_group_and_determinism() -> None:
    text = prometheus.render(load_rules())
    assert text.startswith("# generated by `retention-monitor alerts prometheus`, do not edit\n")
    assert text == prometheus.render(load_rules())
    doc = yaml.safe_load(text)
    assert [g["name"] for g in doc["groups"]] == ["retention-kpis"]


def test_static_rule() -> None:
    r = rule(keep_firing_for="30m", runbook_url="https://x/rb", labels={"team": "cx"}, **{"for": "10m"})
    (out,) = rendered(r)["groups"][0]["rules"]
    assert out == {
        "alert": "TestRule",
        "expr": 'max by (segment) (retention_customer_churn_ratio{window="30d",segment="all"}) > 0.05',
        "for": "10m",
        "keep_firing_for": "30m",
        "labels": {"severity": "critical", "kpi": "churn_rate", "window": "30d", "team": "cx"},
        "annotations": {"summary": "churn {{ $value | humanizePercentage }} in {{ $labels.segment }}",
                        "runbook_url": "https://x/rb"},
    }


def test_segments_and_min_samples() -> None:
    (out,) = rendered(rule(segments=["all", "plan:*", "region:eu"], min_samples=50))["groups"][0]["rules"]
    expr = out["expr"]
    assert 'segment=~"all|plan:.*|region:eu"' in expr
    assert "and on(segment)" in expr
    assert ") >= 50" in expr
    assert "retention_customers_active" in expr
    assert "for" not in out
    assert "keep_firing_for" not in out


def test_change_rules() -> None:
    spike = rule(name="Spike", kind="change", window="1d", baseline_window="30d", scale_to_window=True, factor=3,
                 summary="{value:.2%} vs {baseline:.2%}")
    drop = rule(name="Drop", kpi="nps", kind="change", window="7d", baseline_window="90d", delta=-15, op="<",
                summary="{value:.0f} from {baseline:.0f}")
    out = rendered(spike, drop)["groups"][0]["rules"]
    assert " ".join(out[0]["expr"].split()) == (
        'max by (segment) (retention_customer_churn_ratio{window="1d",segment="all"}) > '
        '3 * max by (segment) (retention_customer_churn_ratio{window="30d",segment="all"}) / 30')
    assert " ".join(out[1]["expr"].split()) == (
        'max by (segment) (retention_nps_score{window="7d",segment="all"}) < '
        'max by (segment) (retention_nps_score{window="90d",segment="all"}) - 15')
    # the baseline of the summary is the (scaled) baseline, without factor and delta
    assert "printf `max by (segment) (retention_nps_score{window=\"90d\",segment=\"%[1]s\"})` " \
           "$labels.segment | query" in out[1]["annotations"]["summary"]


def test_nps_min_samples_sums_the_response_categories() -> None:
    (out,) = rendered(rule(kpi="nps", op="<", threshold=0, min_samples=30))["groups"][0]["rules"]
    assert out["expr"].endswith(
        'and on(segment)\nsum by (segment) (max by (segment, category) '
        '(retention_nps_responses{window="30d",segment="all"})) >= 30')


def test_anomaly_rules_are_skipped_with_a_comment() -> None:
    anomaly = rule(name="Surge", kind="anomaly", kpi="complaints", window="1d", buckets=28)
    text = prometheus.render([anomaly, rule()])
    assert "# Surge (anomaly complaints over 1d): skipped, anomaly rules are evaluated in the stream only" in text
    assert [r["alert"] for r in yaml.safe_load(text)["groups"][0]["rules"]] == ["TestRule"]
    assert not prometheus.expressible(anomaly)
    assert yaml.safe_load(prometheus.render([anomaly]))["groups"][0]["rules"] == []


def cohort_rule(**fields: Any) -> Rule:
    return rule(**{"name": "Cohorts", "kind": "cohort", "kpi": "cohort_customer_retention", "window": "month",
                   "age": 1, "newest": 2, "previous": 3, "threshold": 0.25, "segments": ["all", "plan:*"],
                   "summary": "{value:.0%}, {drop:.0%} below {baseline:.0%} ({samples} customers, {cohorts})",
                   **fields})


def test_cohort_rules_compare_the_cohort_gauges_by_offset() -> None:
    (out,) = rendered(cohort_rule(min_customers=50))["groups"][0]["rules"]
    seg = 'segment=~"all|plan:.*"'
    share = "retention_cohort_customer_retention_ratio{cohort_age=\"1\",cohort_offset=~\"%s\"," + seg + "}"
    newest = f"avg by (segment) (max by (segment, cohort_offset) ({share % '2|3'}))"
    baseline = f"avg by (segment) (max by (segment, cohort_offset) ({share % '4|5|6'}))"
    assert out["expr"].split("\nand on(segment)\n") == [
        f"{newest}\n  <\n0.75 * {baseline}",  # offset 1's month 1 is this month: never compared
        f"count by (segment) (max by (segment, cohort_offset) ({share % '2|3|4|5|6'})) == 5",
        f"{baseline} > 0",
        "min by (segment) (max by (segment, cohort_offset) (retention_cohort_customers"
        f'{{cohort_offset=~"2|3|4|5|6",{seg}}})) >= 50']
    assert out["labels"] == {"severity": "critical", "kpi": "cohort_customer_retention", "window": "month"}
    summary = out["annotations"]["summary"]
    assert summary.startswith("{{ $value | humanizePercentage }}, {{ with printf `1 - avg by (segment)")
    assert summary.endswith("customers, ?)")  # cohort labels: the gauges' offsets are relative
    assert prometheus.expressible(cohort_rule())
    (at_least,) = rendered(cohort_rule(op=">="))["groups"][0]["rules"]
    assert "\n  <=\n0.75 * " in at_least["expr"]


def test_cohort_rules_the_gauges_cannot_express_are_skipped_with_a_comment() -> None:
    weekly, long = cohort_rule(name="Weekly", window="week"), cohort_rule(name="Long", age=6, previous=6)
    revenue = cohort_rule(name="Revenue", kpi="cohort_revenue_retention")
    text = prometheus.render([weekly, long, revenue])
    assert ("# Weekly (cohort cohort_customer_retention over week): skipped, the cohort gauges hold monthly "
            "cohorts, not weeks; evaluated in the stream only.") in text
    assert "# Long (cohort cohort_customer_retention over month): skipped, the cohort gauges reach back 12" in text
    assert ("# Revenue (cohort cohort_revenue_retention over month): segments plan:* are evaluated in the stream "
            "only (the gauge is exported for all only).") in text
    (out,) = yaml.safe_load(text)["groups"][0]["rules"]
    assert 'retention_cohort_revenue_retention_ratio{cohort_age="1",cohort_offset=~"2|3",segment="all"}' in out["expr"]
    assert not prometheus.expressible(weekly)


def test_unexported_sample_sizes_and_segments_are_noted() -> None:
    csat = rule(kpi="csat", op="<", threshold=0.7, min_samples=30, summary="{value:.0%} ({samples} responses)")
    slow = rule(name="Slow", kpi="first_response_p90_seconds", window="1d", threshold=14400,
                segments=["all", "plan:*"], summary="{value:.0f}s in {segment}")
    text = prometheus.render([csat, slow])
    assert "TestRule (static csat over 30d): min_samples=30 is not checked here" in text
    assert "Slow (static first_response_p90_seconds over 1d): segments plan:* are evaluated in the stream only" in text
    out = yaml.safe_load(text)["groups"][0]["rules"]
    assert out[0]["annotations"]["summary"] == '{{ $value | humanizePercentage }} (? responses)'
    assert out[1]["expr"] == ('max (retention_first_response_seconds'
                              '{window="1d",quantile="0.9"}) > 14400')
    assert out[1]["labels"]["segment"] == "all"
    assert out[1]["annotations"]["summary"] == '{{ $value | printf "%.0f" }}s in all'


def test_dashboard_links_follow_the_grafana_url() -> None:
    """A rule's dashboard_url path goes under grafana_url, in the stream's alerts and the Prometheus rules."""
    default = {r.name: r for r in load_rules()}
    assert default["ChurnRateHigh"].dashboard_url == "http://127.0.0.1:3000/d/retention-overview"
    moved = {r.name: r for r in load_rules(grafana_url="https://grafana.example.com/retention/")}
    assert moved["ChurnRateHigh"].dashboard_url == "https://grafana.example.com/retention/d/retention-overview"
    assert moved["FirstResponseSlow"].dashboard_url == "https://grafana.example.com/retention/d/retention-support"
    absolute = rule(dashboard_url="https://elsewhere.example.com/d/x")
    assert absolute.dashboard_url == "https://elsewhere.example.com/d/x"
    text = prometheus.render(list(moved.values()))
    assert "dashboard_url: https://grafana.example.com/retention/d/retention-overview" in text
    assert "127.0.0.1:3000" not in text


def test_alerts_prometheus_uses_the_grafana_url_setting(tmp_path: Path) -> None:
    out = tmp_path / "retention-alerts.yml"
    loaded = LoadedSettings(Settings(grafana_url="https://grafana.example.com"), {})
    con, _ = console()
    assert alerts_prometheus(argparse.Namespace(check=False, output=str(out)), loaded, con) == 0
    assert "https://grafana.example.com/d/retention-overview" in out.read_text(encoding="utf-8")
    assert alerts_prometheus(argparse.Namespace(check=True, output=str(out)), loaded, con) == 0
    # the checked-in file is for the default grafana_url
    assert alerts_prometheus(argparse.Namespace(check=True, output=str(out)), settings(), con) == 1


@pytest.mark.parametrize("name", [r.name for r in load_rules() if prometheus.expressible(r)])
def test_alert_labels_are_the_stream_engines(name: str) -> None:
    """With alert_path = "both", Alertmanager merges the two paths' alerts only when their label sets are
    identical: the rule's labels plus what the expression keeps (``segment`` or nothing) are the engine's."""
    (shipped,) = [r for r in load_rules() if r.name == name]
    r = dataclasses.replace(shipped, labels={**shipped.labels, "team": "cx"})
    (body,) = rendered(r)["groups"][0]["rules"]
    segment = "plan:pro" if prometheus.GAUGES[r.kpi].segmented else "all"
    engine = to_alert(Observation(r, segment, True, 1.0, 100), 0.0, None).labels
    kept = {"segment": segment} if "segment" not in body["labels"] else {}
    assert {"alertname": body["alert"], **kept, **body["labels"]} == engine
    # aggregations name what they keep: job, instance or any target label a scrape adds never reach the alert
    assert "without" not in body["expr"]
    assert all(by in ("by (segment)", "by (segment, category)", "by (class)", "by (category)",
                      "by (segment, cohort_offset)")
               for by in re.findall(r"by \([^)]*\)", body["expr"]))


def test_write_and_stale(tmp_path: Path) -> None:
    out = tmp_path / "rules" / "retention-alerts.yml"
    assert prometheus.stale(out)
    prometheus.write(out)
    assert not prometheus.stale(out)
    out.write_text(out.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert prometheus.stale(out)


# --- CLI handlers -----------------------------------------------------------------------------------------


def test_alerts_list() -> None:
    con, out = console()
    assert alerts_list(argparse.Namespace(), settings(), con) == 0
    text = out.getvalue()
    for name in ("ChurnRateHigh", "ChurnSpike", "NpsDrop", "ComplaintSurge"):
        assert name in text
    assert "stream only" in text


def test_condition_text() -> None:
    rules = {r.name: r for r in load_rules()}
    assert condition(rules["ChurnRateHigh"]) == "churn_rate > 0.05 (n >= 50)"
    assert condition(rules["ChurnSpike"]) == "churn_rate > 3 * churn_rate[30d] * 1d/30d (n >= 50)"
    assert condition(rules["NpsDrop"]) == "nps < nps[90d] - 15 (n >= 30)"
    assert condition(rules["ComplaintSurge"]) == "complaints > mean + 3 sd of the last 28 x 1d (n >= 10)"


def test_alerts_check_ok() -> None:
    con, out = console()
    assert alerts_check(argparse.Namespace(file=str(ROOT / "alerts" / "rules.yml")), settings(), con) == 0
    assert out.getvalue().strip().endswith(f"{len(load_rules())} rules OK")


GOOD = {"name": "ChurnHigh", "kpi": "churn_rate", "window": "30d", "op": ">", "threshold": 0.05,
        "severity": "critical", "summary": "churn {value}"}


@pytest.mark.parametrize(("change", "field", "detail"), [
    ({"kpi": "churn"}, "kpi='churn'", "must be one of"),
    ({"window": "14d"}, "window='14d'", "must be one of 1d, 7d, 30d, 90d"),
    ({"summary": None}, "summary", "missing"),
])
def test_alerts_check_bad_file(tmp_path: Path, change: dict[str, Any], field: str, detail: str) -> None:
    raw = {**GOOD, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"rules": [raw]}), encoding="utf-8")
    con, _ = console()
    with pytest.raises(RuleError) as info:
        alerts_check(argparse.Namespace(file=str(path)), settings(), con)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: rule ChurnHigh: {field}")
    assert detail in message


def test_alerts_prometheus_write_and_check(tmp_path: Path) -> None:
    out = tmp_path / "retention-alerts.yml"
    con, text = console()
    assert alerts_prometheus(argparse.Namespace(check=True, output=str(out)), settings(), con) == 1
    assert "stale" in text.getvalue()
    assert alerts_prometheus(argparse.Namespace(check=False, output=str(out)), settings(), con) == 0
    assert out.read_text(encoding="utf-8") == prometheus.render(load_rules())
    assert "alert_path = stream: the workers page for these rules; load this file into Prometheus only" \
        in text.getvalue()
    con, text = console()
    both = LoadedSettings(Settings(alert_path="both"), {})
    assert alerts_prometheus(argparse.Namespace(check=False, output=str(out)), both, con) == 0
    assert text.getvalue().strip() == f"wrote {out}"
    assert alerts_prometheus(argparse.Namespace(check=True, output=str(out)), settings(), con) == 0
    # the checked-in file, with the default output path
    assert alerts_prometheus(argparse.Namespace(check=True), settings(), con) == 0
