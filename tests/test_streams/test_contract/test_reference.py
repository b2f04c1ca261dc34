"""The generated tables of docs/contract/events.md come from the contract code and must not be stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.contract import reference
from streams.contract.decode import REASONS
from streams.contract.events import DATA_TYPES


def test_the_tables_in_the_event_contract_are_up_to_date() -> None:
    assert not reference.stale(), "run `retention-monitor schemas` and commit docs/contract/events.md"


def test_every_type_and_reason_is_in_the_tables() -> None:
    types, reasons = reference.types_table(), reference.reasons_table()
    assert all(f"| `{t}` |" in types for t in DATA_TYPES)
    assert all(f"| `{r}` |" in reasons for r in REASONS)
    assert "`score` (integer 0-10)" in types
    assert "`kind`? (`complaint` \\| `incident` \\| `question` \\| `request`, default `request`)" in types


def test_an_edited_table_is_stale_and_rewritten(tmp_path: Path) -> None:
    doc = tmp_path / "events.md"
    doc.write_text(reference.DOC.read_text().replace("| `bad_time` |", "| `bad_tme` |"))
    assert reference.stale(doc)
    reference.write(doc)
    assert not reference.stale(doc)
    assert doc.read_text() == reference.DOC.read_text()


def test_a_document_without_the_generated_parts_is_refused(tmp_path: Path) -> None:
    doc = tmp_path / "events.md"
    doc.write_text("# Events\n<!-- generated: event-types -->\nx\n<!-- end: event-types -->\n")
    with pytest.raises(ValueError, match="lacks the generated part"):
        reference.stale(doc)
