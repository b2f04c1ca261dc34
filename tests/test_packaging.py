"""What the package declares: its licence file, and no runtime dependency that nothing imports."""

from __future__ import annotations

import ast
import re
import tomllib

from test_layout import PACKAGES, ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Distributions whose import name differs from the distribution name.
IMPORT_NAMES = {"faust-streaming": "faust", "mode-streaming": "mode", "prometheus-client": "prometheus_client",
                "grafana-client": "grafana_client", "pyyaml": "yaml"}  # fmt: skip


def imported_top_levels() -> set[str]:
    """Top-level modules imported anywhere in the packages (also inside functions)."""
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def test_every_runtime_dependency_is_imported() -> None:
    imported = imported_top_levels()
    names = [re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in PROJECT["dependencies"]]
    unused = [name for name in names if IMPORT_NAMES.get(name, name.replace("-", "_")) not in imported]
    assert not unused, f"declared but never imported: {unused}"


def test_the_licence_is_shipped_and_is_the_one_declared() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
