"""deploy/k8s/prometheus-rules.yaml and grafana-dashboards.yaml carry the checked-in rule files and dashboards
unchanged, and `retention-monitor deploy generate --check` fails when they are stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from retention_monitor import deploy
from retention_monitor.cli import main


def _docs(name: str) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all((deploy.K8S_DIR / name).read_text()) if d]


def test_the_checked_in_manifests_are_current() -> None:
    assert deploy.stale() == []


def test_one_prometheus_rule_per_rule_file_with_its_groups() -> None:
    rules = {d["metadata"]["name"]: d for d in _docs(deploy.RULES_FILE)}  # type: ignore[index]
    files = sorted(deploy.RULES_DIR.glob("*.yml"))
    assert sorted(rules) == [f"retention-monitor-{p.stem}" for p in files]
    for path in files:
        assert rules[f"retention-monitor-{path.stem}"]["spec"] == {"groups": yaml.safe_load(path.read_text())["groups"]}


def test_one_labelled_configmap_per_dashboard_with_its_json_unchanged() -> None:
    maps = _docs(deploy.DASHBOARDS_FILE)
    files = sorted(deploy.DASHBOARDS_DIR.glob("*.json"))
    assert len(maps) == len(files) >= 4
    for path, cm in zip(files, maps, strict=True):
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # type: ignore[index]
        assert cm["data"] == {path.name: path.read_text()}
        assert json.loads(cm["data"][path.name])["uid"]  # type: ignore[index]


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path, Path]:
    rules, dashboards, out = tmp_path / "rules", tmp_path / "dashboards", tmp_path / "k8s"
    shutil.copytree(deploy.RULES_DIR, rules)
    shutil.copytree(deploy.DASHBOARDS_DIR, dashboards)
    out.mkdir()
    deploy.write_all(out, rules, dashboards)
    return rules, dashboards, out


def test_a_changed_rule_file_or_dashboard_makes_its_manifest_stale(sources: tuple[Path, Path, Path]) -> None:
    rules, dashboards, out = sources
    assert deploy.stale(out, rules, dashboards) == []
    meta = rules / "meta.yml"
    meta.write_text(meta.read_text().replace("for: 10m", "for: 15m", 1))
    assert deploy.stale(out, rules, dashboards) == [deploy.RULES_FILE]
    (dashboards / "retention-extra.json").write_text('{"uid": "extra"}\n')
    assert deploy.stale(out, rules, dashboards) == [deploy.RULES_FILE, deploy.DASHBOARDS_FILE]
    deploy.write_all(out, rules, dashboards)
    assert deploy.stale(out, rules, dashboards) == []


def test_the_command_checks_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "generate", "--check", "--dir", str(tmp_path)]) == 1
    assert f"stale {deploy.RULES_FILE}, {deploy.DASHBOARDS_FILE}" in capsys.readouterr().out
    assert main(["deploy", "generate", "--dir", str(tmp_path)]) == 0
    assert main(["deploy", "generate", "--check", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / deploy.RULES_FILE).read_text() == (deploy.K8S_DIR / deploy.RULES_FILE).read_text()


def test_a_rule_file_without_groups_is_refused(sources: tuple[Path, Path, Path]) -> None:
    rules, dashboards, out = sources
    (rules / "broken.yml").write_text("rules: []\n")
    with pytest.raises(deploy.UsageError, match=r"broken.yml: no groups"):
        deploy.stale(out, rules, dashboards)
