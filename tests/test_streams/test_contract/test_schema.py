"""The checked-in JSON Schemas are generated from the contract and must not be stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from fixtures import ROOT

from core.settings import Settings
from streams.contract.decode import Event, decode
from streams.contract.events import DATA_TYPES
from streams.contract.schema import COMBINED, combined_schema, render_all, stale

EXAMPLES = (ROOT / "examples" / "events.jsonl").read_text(encoding="utf-8").splitlines()


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
    assert set(schemas) == {f"{t}.json" for t in DATA_TYPES} | {COMBINED}
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


def test_the_sample_file_holds_one_valid_event_of_every_type() -> None:
    events = [json.loads(line) for line in EXAMPLES]
    assert sorted(e["type"] for e in events) == sorted(DATA_TYPES)
    currencies = frozenset(Settings().rates)
    assert all(isinstance(decode(line.encode(), currencies), Event) for line in EXAMPLES)


def test_the_combined_schema_accepts_every_sample_by_its_type_only() -> None:
    schema = combined_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for line in EXAMPLES:
        event = json.loads(line)
        validator.validate(event)
        matching = [ref for ref in schema["oneOf"]
                    if jsonschema.Draft202012Validator({**schema, "oneOf": [ref]}).is_valid(event)]
        assert matching == [{"$ref": f"#/$defs/{event['type']}"}]  # discriminated by type


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"type": "survey.nps", "data": {"customer_id": "c", "score": 11}}, "score"),
        ({"type": "order.placed", "data": {"customer_id": "c", "order_id": "o", "amount": 1}}, "currency"),
        ({"type": "customer.deleted"}, "type"),
        ({"specversion": "0.3"}, "specversion"),
    ],
)
def test_the_combined_schema_refuses_what_the_monitor_refuses(change: dict[str, object], where: str) -> None:
    event = {**json.loads(EXAMPLES[0]), **change}
    assert not isinstance(decode(json.dumps(event).encode(), frozenset({"EUR"})), Event)
    errors = list(jsonschema.Draft202012Validator(combined_schema()).iter_errors(event))
    assert errors
    assert any(where in json.dumps(list(e.absolute_path)) + e.message + str([c.message for c in e.context or []])
               for e in errors)
