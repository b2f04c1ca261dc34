"""The generated parts of docs/contract/events.md: the ``data`` fields of every type and the reasons
a message is dead-lettered, rendered from the same structs that decode events (so they cannot drift).

A generated part sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``; everything else
in the document is written by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from streams.contract.decode import REASONS
from streams.contract.events import DATA_TYPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "contract" / "events.md"
_BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n).*?(\n<!-- end: (?P=name) -->)", re.S)


def _kind(schema: dict[str, Any]) -> str:
    """A field's JSON type and limits in a few words (``string ≤ 256``, ``integer 0-10``…)."""
    if "anyOf" in schema:
        return " or ".join(_kind(s) for s in schema["anyOf"] if s.get("type") != "null")
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "object")
    if kind == "string":
        if "pattern" in schema:
            return f"string `{schema['pattern']}`"
        return f"string {schema.get('minLength', 0)}-{schema['maxLength']}" if "maxLength" in schema else "string"
    if kind in ("integer", "number") and "minimum" in schema:
        low, high = schema["minimum"], schema.get("maximum")
        return f"{kind} {low:,.0f}-{high:,.0f}" if high is not None else f"{kind} ≥ {low:,.0f}"
    if kind == "object":
        return "object of string → string"
    return str(kind)


def _fields(event_type: str) -> str:
    schema = msgspec.json.schema(DATA_TYPES[event_type])
    struct = schema["$defs"][DATA_TYPES[event_type].__name__]
    required = set(struct.get("required", []))
    parts = []
    for name, spec in struct["properties"].items():
        default = f", default `{spec['default']}`" if spec.get("default") not in (None, {}) else ""
        parts.append(f"`{name}`{'' if name in required else '?'} ({_kind(spec)}{default})")
    return ", ".join(parts)


def types_table() -> str:
    rows = ["| type | `data` fields (`?`: optional) | meaning |", "|---|---|---|"]
    for event_type, struct in DATA_TYPES.items():
        meaning = " ".join((struct.__doc__ or "").split()).split(": ", 1)[-1].replace("``", "`")
        rows.append(f"| `{event_type}` | {_fields(event_type)} | {meaning} |")
    return "\n".join(rows)


def reasons_table() -> str:
    rows = ["| reason | when |", "|---|---|"]
    rows += [f"| `{reason}` | {text} |" for reason, text in REASONS.items()]
    return "\n".join(rows)


PARTS: dict[str, Callable[[], str]] = {"event-types": types_table, "dead-letter-reasons": reasons_table}


def render(text: str) -> str:
    """``text`` with every generated part rendered afresh; an unknown part name is an error."""
    def fill(match: re.Match[str]) -> str:
        return f"{match.group(1)}{PARTS[match.group('name')]()}{match.group(3)}"

    missing = set(PARTS) - {m.group("name") for m in _BLOCK.finditer(text)}
    if missing:
        raise ValueError(f"{DOC.name} lacks the generated part(s) {', '.join(sorted(missing))}")
    return _BLOCK.sub(fill, text)


def stale(doc: Path = DOC) -> bool:
    text = doc.read_text()
    return render(text) != text


def write(doc: Path = DOC) -> None:
    doc.write_text(render(doc.read_text()))
