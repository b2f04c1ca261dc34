"""The checked-in JSON Schemas are generated from the contract and must not be stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fixtures import ROOT

from streams.contract.events import DATA_TYPES
from streams.contract.schema import render_all, stale


def test_checked_in_schemas_are_up_to_date() -> None:
    assert stale(ROOT / "schemas") == [], "run `retention-monitor schemas` and commit the result"


def test_stale_detects_edits_missing_and_extra_files(tmp_path: Path) -> None:
    for name, text in render_all().items():
        (tmp_path / name).write_text(text)
    assert stale(tmp_path) == []
    (tmp_path / "survey.nps.json").write_text("{}")
    (tmp_path / "order.placed.json").unlink()
    (tmp_path / "old.type.json").write_text("{}")
    assert stale(tmp_path) == ["old.type.json", "order.placed.json", "survey.nps.json"]


def test_schema_pins_the_contract_rules() -> None:
    schemas = {name: json.loads(text) for name, text in render_all().items()}
    assert set(schemas) == {f"{t}.json" for t in DATA_TYPES}
    nps = schemas["survey.nps.json"]
    data = nps["$defs"]["SurveyNps"]
    assert data["properties"]["score"] == {"type": "integer", "minimum": 0, "maximum": 10}
    assert data["required"] == ["customer_id", "score"]
    assert nps["properties"]["specversion"] == {"const": "1.0"}


def test_cli_check_exits_1_when_stale(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "retention_monitor.cli", "schemas", "--check", "--dir", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 1
    assert "stale JSON Schemas" in result.stdout
