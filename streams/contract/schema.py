"""JSON Schema files for publishers, generated from the contract structs (checked in under schemas/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from streams.contract.events import DATA_TYPES

_BASE = "https://retention-monitor.dev/schemas"


def event_schema(event_type: str) -> dict[str, Any]:
    """The full CloudEvents schema of one type: envelope attributes plus that type's ``data``."""
    data_schema = msgspec.json.schema(DATA_TYPES[event_type])
    defs = data_schema.pop("$defs", {})
    data_ref = data_schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_BASE}/{event_type}.json",
        "title": event_type,
        "description": f"CloudEvents 1.0 event of type {event_type} (structured JSON mode, UTF-8).",
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "maxLength": 128},
            "source": {"type": "string", "minLength": 1, "maxLength": 256},
            "type": {"const": event_type},
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 with an offset; the event time every KPI uses",
            },
            "data": data_ref,
        },
        "$defs": defs,
    }


COMBINED = "events.schema.json"


def combined_schema() -> dict[str, Any]:
    """Every type in one self-contained schema: a ``oneOf`` of the per-type schemas, which ``type`` tells
    apart (each pins it with ``const``), so a publisher can validate any event with one file."""
    defs: dict[str, Any] = {}
    for name in DATA_TYPES:
        schema = event_schema(name)
        defs.update(schema.pop("$defs"))  # the data structs' names are unique across types
        for key in ("$schema", "$id"):
            schema.pop(key)
        defs[name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_BASE}/{COMBINED}",
        "title": "retention-monitor events",
        "description": "Any event of the contract: CloudEvents 1.0 in structured JSON mode; `type` selects the "
                       "schema of `data`.",
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": list(DATA_TYPES)}},
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in DATA_TYPES],
        "$defs": defs,
    }


def _render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def render_all() -> dict[str, str]:
    """File name -> content of every schema file, deterministic (sorted keys, trailing newline)."""
    files = {f"{name}.json": _render(event_schema(name)) for name in DATA_TYPES}
    return {**files, COMBINED: _render(combined_schema())}


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Names of schema files that are missing, differ from the code, or should not be there."""
    expected = render_all()
    out = [n for n, t in expected.items() if not (directory / n).is_file() or (directory / n).read_text() != t]
    out += [p.name for p in directory.glob("*.json") if p.name not in expected]
    return sorted(out)
