"""What the package declares: its licence file, version ranges, no runtime dependency that nothing imports,
matplotlib only for `report` (the worker never imports it), extras for the report and the bench, and a
constraints.txt that pins exactly what the tests run on."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from test_layout import PACKAGES, ROOT

from retention_monitor import constraints
from retention_monitor.cli import main
from retention_monitor.exceptions import UsageError

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


def _requirements() -> list[str]:
    return [*PROJECT["dependencies"], *(r for extra in PROJECT["optional-dependencies"].values() for r in extra)]


def test_requirements_are_ranges_with_a_tested_lower_bound() -> None:
    pinned = [r for r in _requirements() if "==" in r]
    unbounded = [r for r in _requirements() if ">=" not in r and not r.startswith("retention-monitor[")]
    assert pinned == []
    assert unbounded == []


def test_matplotlib_only_in_the_report_extra_and_dev_brings_every_extra() -> None:
    extras = PROJECT["optional-dependencies"]
    assert not any(r.startswith("matplotlib") for r in PROJECT["dependencies"])
    assert [r for r in extras["report"] if r.startswith("matplotlib")]
    assert "retention-monitor[report]" in extras["bench"]
    assert "retention-monitor[report,bench]" in extras["dev"]


def test_the_bench_extra_brings_what_bench_imports() -> None:
    imported = {node.names[0].name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "").split(".")[0]
                for path in (ROOT / "bench").glob("*.py") for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0)}
    bench = " ".join(PROJECT["optional-dependencies"]["bench"])
    for module, requirement in (("quixstreams", "quixstreams"), ("bytewax", "bytewax[kafka]"),
                                ("confluent_kafka", "bytewax[kafka]"), ("pathway", "pathway"),
                                ("matplotlib", "retention-monitor[report]")):
        assert module in imported, module
        assert requirement in bench, requirement


def test_the_worker_never_imports_matplotlib() -> None:
    code = ("import sys\nfrom retention_monitor import cli, commands\nimport streams.worker.main\n"
            "cli._handler('worker')\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_report_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # what an install without the extra sees: no report module loaded yet, no matplotlib (nor a submodule
    # of it, which an import would find in sys.modules without asking for its package)
    for name in [m for m in sys.modules if m.startswith(("retention_monitor.report", "matplotlib."))]:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["report", "--period", "2025-Q1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("error: this command needs matplotlib, which is not installed: "
                           "pip install 'retention-monitor[report]'")


def test_constraints_pin_what_is_installed_here() -> None:
    found = constraints.pins()
    assert constraints.differences(constraints.DEFAULT_OUTPUT.read_text(), found) == [], (
        "constraints.txt is stale: `pip install -c constraints.txt -e '.[dev]'`, or after a tested upgrade "
        "`retention-monitor deploy constraints`")
    assert {"faust-streaming", "aiokafka", "matplotlib", "pytest", "quixstreams", "niquests"} <= found.keys()
    assert "retention-monitor" not in found
    runtime = constraints.pins(extras=())  # what the image installs
    assert {"faust-streaming", "rocksdict", "numpy"} <= runtime.keys()
    assert not {"matplotlib", "pillow", "pytest", "quixstreams"} & runtime.keys()


def test_constraints_differences_are_named() -> None:
    found = {"aiokafka": "0.14.0", "rich": "15.0.0"}
    text = constraints.render(found)
    assert constraints.differences(text, found) == []
    assert constraints.differences(text.replace("rich==15.0.0", "rich==14.1.0"), found) == [
        "rich: pinned 14.1.0, installed 15.0.0"]
    assert constraints.differences(text + "numpy==2.4.6\n", found) == ["numpy: pinned 2.4.6, installed nothing"]
    assert constraints.differences(text.replace("# Generated", "# edited"), found) == [
        "the file is not in the generated form"]


def test_constraints_follow_requirements_extras_and_markers(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "retention-monitor"\ndependencies = ["msgspec>=0.22"]\n'
                         '[project.optional-dependencies]\nreport = ["matplotlib>=3"]\n'
                         'dev = ["retention-monitor[report]", "tomli>=1; python_version < \'3.11\'"]\n')
    found = constraints.pins(pyproject)
    assert {"msgspec", "matplotlib", "numpy", "pillow"} <= found.keys()  # numpy and pillow: matplotlib's
    assert "tomli" not in found
    pyproject.write_text(pyproject.read_text().replace("msgspec>=0.22", "msgspec>=99"))
    with pytest.raises(UsageError, match=r"installed msgspec .* does not satisfy 'msgspec>=99'"):
        constraints.pins(pyproject)
