"""The command line: one-line errors with the right exit codes, and the README staying true."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import ROOT, free_port, json_server

from retention_monitor.cli import _parser, main


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retention_monitor.cli", *args],
        capture_output=True, text=True, cwd=ROOT, check=False, env={**os.environ, **(env or {})},
    )


def test_bad_setting_is_one_line_with_exit_2() -> None:
    result = cli("config", "show", env={"RETENTION_WEB_PORT": "http"})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: RETENTION_WEB_PORT='http': must be an integer"


@pytest.mark.parametrize("command", [("config", "show"), ("worker",)])
def test_a_mistyped_setting_is_one_line_with_exit_2(command: tuple[str, ...]) -> None:
    result = cli(*command, env={"RETENTION_REPORTING_CURRENCY": "USD"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: RETENTION_REPORTING_CURRENCY: not a setting; did you mean 'RETENTION_CURRENCY'? "
        "(RETENTION_ALLOW_UNKNOWN=1 ignores unknown RETENTION_* variables)"]


def test_unreachable_worker_is_one_line_with_exit_3() -> None:
    port = free_port()
    result = cli("kpis", "--period", "2025-Q1", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 3
    assert f"no worker answers at http://127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_kafka_is_exit_3_and_a_missing_file_exit_2(tmp_path: Path) -> None:
    port = free_port()
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    result = cli("publish", str(events), env={"RETENTION_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    assert result.returncode == 3
    assert f"error: cannot reach Kafka at 127.0.0.1:{port}" in result.stderr
    assert cli("publish", str(tmp_path / "missing.jsonl")).returncode == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["simulate", "--rate", "-5"], "argument --rate: '-5' is not a number > 0"),
        (["simulate", "--invalid-ratio", "2"], "argument --invalid-ratio: '2' is not a ratio between 0 and 1"),
        (["worker", "--web-port", "99999"], "argument --web-port: '99999' is not a port (1-65535)"),
        (["stack", "restart"], "argument action: invalid choice: 'restart'"),
    ],
)
def test_bad_arguments_name_the_value(args: list[str], needle: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    result = cli(*args)
    assert result.returncode == 2
    assert needle in result.stderr


@pytest.mark.parametrize("command", [["simulate", "--output", "/dev/null", "--count", "1"], ["demo"]])
def test_unknown_scenario_lists_the_known_ones(command: list[str]) -> None:
    result = cli(*command, "--scenario", "meteor")  # the demo refuses it before it touches the stack
    assert result.returncode == 2  # bad input, not an unreachable service
    assert "'meteor' is not one of steady, churn-spike" in result.stderr


@pytest.mark.parametrize(("status", "code"), [(400, 2), (404, 2), (503, 3), (500, 3)])
def test_a_refused_question_exits_2_and_a_worker_that_cannot_answer_now_3(status: int, code: int) -> None:
    # A local server stands in for a worker refusing a question (4xx) or unable to answer now (5xx).
    with json_server(lambda _: (status, {"error": "period 'yesterday-ish' is not a period"})) as url:
        result = cli("kpis", "--period", "2025-Q1", "--url", url)
        alerts = cli("alerts", "test", "--period", "2025-Q1", "--url", url)
    assert (result.returncode, alerts.returncode) == (code, code)
    assert result.stderr.strip() == f"error: {url}/kpis: period 'yesterday-ish' is not a period"
    assert alerts.stderr.strip() == f"error: {url}/alerts: period 'yesterday-ish' is not a period"


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"retention-monitor {importlib.metadata.version('retention-monitor')}"


def test_the_config_option_may_follow_the_command(tmp_path: Path) -> None:
    cfg = tmp_path / "rm.toml"
    cfg.write_text('app_id = "after"\n')
    for args in (("config", "show", "--json", "--config", str(cfg)), ("config", "show", f"--config={cfg}", "--json"),
                 ("--config", str(cfg), "config", "show", "--json")):
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["app_id"] == {"value": "after", "source": str(cfg)}


def test_config_show_json_reports_sources() -> None:
    result = cli("config", "show", "--json", env={"RETENTION_APP_ID": "shop"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["app_id"] == {"value": "shop", "source": "RETENTION_APP_ID"}
    assert shown["web_port"]["source"] == "default"


def test_config_show_never_prints_the_api_token() -> None:
    token = "do-not-print-me-0123456789"
    result = cli("config", "show", "--json", env={"RETENTION_API_TOKEN": token})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["api_token"] == {"value": "set", "source": "RETENTION_API_TOKEN"}
    assert token not in result.stdout
    table = cli("config", "show", env={"RETENTION_API_TOKEN": token})
    assert token not in table.stdout
    assert json.loads(cli("config", "show", "--json").stdout)["api_token"]["value"] == "unset"


def test_simulate_to_file_writes_valid_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    result = cli("simulate", "--output", str(out), "--count", "200", "--start", "2025-01-01T00:00:00Z")
    assert result.returncode == 0, result.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["time"] >= "2025-01-01" for line in lines)


def test_the_readme_first_screen_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:20])
    assert "./run demo" in first_screen
    assert "./run test" in first_screen
    assert "exec ./run test" in (ROOT / ".ci" / "run").read_text()


READ_COMMANDS = (["kpis"], ["at-risk"], ["report"], ["config", "show"], ["stack"], ["alerts", "list"],
                 ["alerts", "test"], ["replay"], ["dlq", "list"], ["dlq", "show"], ["dlq", "redrive"])


def _subparser(path: list[str]) -> argparse.ArgumentParser:
    parser = _parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("path", READ_COMMANDS, ids=" ".join)
def test_every_read_command_has_json(path: list[str]) -> None:
    parser = _subparser(path[:1] if path[0] in ("config", "stack") else path)
    assert "--json" in parser._option_string_actions, f"{' '.join(path)} has no --json"


def test_every_command_says_what_it_does_and_the_exit_codes_are_documented() -> None:
    top = _parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    assert set(helps) == set(sub.choices)
    assert all(helps.values()), [name for name, text in helps.items() if not text]
    epilog = top.epilog or ""
    for code in ("0 ok", "1 a check failed", "2 bad input", "3 a service", "130"):
        assert code in epilog, code
    commands = (ROOT / "docs" / "commands.md").read_text()
    rows = ("| 0 | ok |", "| 1 | a check failed", "| 2 | bad input or configuration",
            "| 3 | a service is unreachable", "| 130 | interrupted |")
    for row in rows:
        assert row in commands, row
