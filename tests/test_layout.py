"""The import graph is a DAG: each package imports only from the layers below it (or itself).

From the bottom: ``core`` (settings, the exception root, periods) imports nothing of the project;
``metrics`` is pure KPI logic on ``core``; ``alerts`` evaluates rules on ``metrics``; inside
``streams`` the stages follow the data flow (contract -> route -> apply -> follow) with the shared
pieces under them, and the worker and the producer-side tools on top; ``retention_monitor`` (the
command line) stands on everything. Every ``import`` counts, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS: list[tuple[str, ...]] = [
    ("core",),
    ("metrics",),
    ("alerts",),
    ("streams", "streams.exceptions", "streams.ports", "streams.wire", "streams.telemetry"),
    ("streams.contract",),
    ("streams.kafka", "streams.memory"),
    ("streams.route",),
    ("streams.apply",),
    ("streams.follow",),
    ("streams.cluster",),
    ("streams.at_risk",),
    ("streams.web",),
    ("streams.worker",),
    ("streams.producers",),
    ("retention_monitor",),
]
PACKAGES = ("core", "metrics", "alerts", "streams", "retention_monitor")


def unit_of(module: str) -> str | None:
    """The layer entry ``module`` belongs to (the longest matching prefix), or None outside the project."""
    best = None
    for layer in LAYERS:
        for unit in layer:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best)):
                best = unit
    return best


def level(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of the project's packages in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, m) for line, m in out if m.split(".")[0] in PACKAGES]


def back_edges(root: Path) -> list[str]:
    """Every import from a higher layer, or from a sibling unit of the same layer."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            here = unit_of(module)
            assert here is not None, f"{module} is in no layer of tests/test_layout.py"
            for line, target in imports(path):
                there = unit_of(target)
                if there is None or there == here:
                    continue
                if level(there) >= level(here):
                    found.append(f"{path.relative_to(root)}:{line} imports {target} ({there} is not below {here})")
    return found


def test_every_module_is_in_a_layer_and_imports_only_from_below() -> None:
    assert back_edges(ROOT) == []


def test_a_back_edge_is_found(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "metrics" / "kpis.py").write_text("from streams.route.stage import RouteStage\n")
    (tmp_path / "streams" / "route").mkdir()
    (tmp_path / "streams" / "route" / "stage.py").write_text("def f() -> None:\n    import streams.apply.stage\n")
    (tmp_path / "streams" / "apply").mkdir()
    (tmp_path / "streams" / "apply" / "stage.py").write_text("from streams.route import stage\nimport core.errors\n")
    # apply may import route and core (below it); metrics may not import a stage, nor route import apply
    assert back_edges(tmp_path) == [
        "metrics/kpis.py:1 imports streams.route.stage.RouteStage (streams.route is not below metrics)",
        "streams/route/stage.py:2 imports streams.apply.stage (streams.apply is not below streams.route)",
    ]


@pytest.mark.parametrize(("module", "unit"), [("core.settings", "core"), ("streams.route.stage", "streams.route"),
                                              ("streams.wire", "streams.wire"), ("faust", None)])
def test_units(module: str, unit: str | None) -> None:
    assert unit_of(module) == unit
