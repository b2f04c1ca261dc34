"""The documentation a clone carries: every relative link resolves inside the repository, the settings
and commands documented are exactly the real ones, and no code points outside the repository."""

from __future__ import annotations

import re
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
from markdown import broken_links

from core.settings import Settings
from retention_monitor.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "streams", "metrics", "alerts", "retention_monitor", "bench", "deploy")


def tracked(pattern: str) -> list[Path]:
    names = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / n for n in names.stdout.split()]


def markdown_files() -> list[Path]:
    untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "*.md"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.split()
    return sorted({*tracked("*.md"), *(ROOT / n for n in untracked)})


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(doc: Path) -> None:
    assert broken_links(ROOT, doc) == []


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Title\n## Part one\n")
    doc = tmp_path / "docs" / "a.md"
    doc.write_text("[ok](b.md#part-one) [gone](c.md) [bad](b.md#part-two) [out](../../x.md) "
                   "[web](https://example.com) `[code](nope.md)`\n")
    assert broken_links(tmp_path, doc) == ["docs/a.md: c.md does not exist", "docs/a.md: b.md#part-two has no such "
                                           "heading", "docs/a.md: ../../x.md leaves the repository"]


def documented(table_doc: Path) -> set[str]:
    """The settings named in the first column of the configuration table (``a``, ``b`` rows count both)."""
    names: set[str] = set()
    for line in table_doc.read_text().splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return names


def test_the_configuration_table_lists_every_setting_and_only_those() -> None:
    assert documented(ROOT / "docs" / "configuration.md") == {f.name for f in fields(Settings)}


def test_every_command_is_documented() -> None:
    text = (ROOT / "docs" / "commands.md").read_text()
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert [c for c in commands if f"`retention-monitor {c}" not in text] == []


def test_no_code_refers_to_issues_or_to_files_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|\b(EVENTS|KPIS|METRICS)\.md\b|\b[Ii]ssues? #?\d+\b|\bseed \d{3}\b")
    hits = [f"{path.relative_to(ROOT)}:{i}" for pkg in PACKAGES for path in tracked(f"{pkg}/*")
            if path.suffix in (".py", ".yml", ".yaml", ".toml") and path.exists()
            for i, line in enumerate(path.read_text().splitlines(), 1) if outside.search(line)]
    assert hits == []
