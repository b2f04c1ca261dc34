"""A small typed builder of Grafana dashboards (panels, rows, template variables) and PromQL helpers.

KPI gauges have one owning worker per series, so every KPI query reads them as
``max without (instance) (...)``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DATASOURCE_UID = "retention-prometheus"
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards"
WINDOWS = ("1d", "7d", "30d", "90d", "day", "week", "month", "quarter", "year")
TAG = "retention-monitor"
GRID_WIDTH = 24

JSON = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel."""

    ref_id: str
    expr: str
    legend_format: str = ""

    def to_json(self) -> JSON:
        return {"datasource": dict(DATASOURCE), "expr": self.expr, "legendFormat": self.legend_format,
                "range": True, "refId": self.ref_id}


def targets(*queries: tuple[str, str]) -> tuple[Target, ...]:
    """``(expr, legendFormat)`` pairs as targets with refIds A, B, C …"""
    return tuple(Target(string.ascii_uppercase[i], expr, legend) for i, (expr, legend) in enumerate(queries))


@dataclass(frozen=True)
class Panel:
    """A time series (default) or stat panel."""

    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat"] = "timeseries"
    description: str = ""
    width: int = 8
    height: int = 8
    decimals: int | None = None
    min: float | None = None
    max: float | None = None

    def to_json(self, panel_id: int, x: int, y: int) -> JSON:
        defaults: JSON = {"unit": self.unit}
        for key, value in (("decimals", self.decimals), ("min", self.min), ("max", self.max)):
            if value is not None:
                defaults[key] = value
        options: JSON
        if self.kind == "stat":
            options = {"colorMode": "value", "graphMode": "area", "justifyMode": "auto", "textMode": "auto",
                       "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
        else:
            options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                       "tooltip": {"mode": "multi", "sort": "desc"}}
        return {
            "datasource": dict(DATASOURCE),
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "options": options,
            "targets": [t.to_json() for t in self.targets],
            "title": self.title,
            "type": self.kind,
        }


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right and wrapped at the grid width."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class CustomVariable:
    """A template variable with a fixed list of values."""

    name: str
    label: str
    values: tuple[str, ...]
    default: str

    def to_json(self) -> JSON:
        return {
            "current": {"selected": True, "text": self.default, "value": self.default},
            "hide": 0,
            "includeAll": False,
            "label": self.label,
            "multi": False,
            "name": self.name,
            "options": [{"selected": v == self.default, "text": v, "value": v} for v in self.values],
            "query": ",".join(self.values),
            "skipUrlSync": False,
            "type": "custom",
        }


@dataclass(frozen=True)
class QueryVariable:
    """A template variable whose values come from a Prometheus query (e.g. ``label_values``)."""

    name: str
    label: str
    query: str
    default: str

    def to_json(self) -> JSON:
        return {
            "current": {"selected": True, "text": self.default, "value": self.default},
            "datasource": dict(DATASOURCE),
            "definition": self.query,
            "hide": 0,
            "includeAll": False,
            "label": self.label,
            "multi": False,
            "name": self.name,
            "options": [],
            "query": self.query,
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
            "type": "query",
        }


Variable = CustomVariable | QueryVariable


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = field(default=(TAG,))

    def panels(self) -> list[JSON]:
        """Row panels and their panels with ids 1, 2, … and grid positions."""
        out: list[JSON] = []
        y = 0
        for row in self.rows:
            out.append({"collapsed": False, "datasource": dict(DATASOURCE), "gridPos": {"h": 1, "w": GRID_WIDTH,
                        "x": 0, "y": y}, "id": len(out) + 1, "panels": [], "title": row.title, "type": "row"})
            y += 1
            x, line_height = 0, 0
            for panel in row.panels:
                if x + panel.width > GRID_WIDTH:
                    x, y, line_height = 0, y + line_height, 0
                out.append(panel.to_json(len(out) + 1, x, y))
                x += panel.width
                line_height = max(line_height, panel.height)
            y += line_height
        return out

    def to_json(self) -> JSON:
        return {
            "annotations": {"list": []},
            "description": self.description,
            "editable": True,
            "graphTooltip": 1,
            "links": [{"asDropdown": False, "icon": "external link", "includeVars": True, "keepTime": True,
                       "tags": [TAG], "targetBlank": False, "title": "retention-monitor", "type": "dashboards"}],
            "panels": self.panels(),
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "tags": list(self.tags),
            "templating": {"list": [v.to_json() for v in self.variables]},
            "time": {"from": "now-24h", "to": "now"},
            "timezone": "",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
        }


# -- the dashboards -------------------------------------------------------------------------------

WINDOW_VAR = CustomVariable("window", "Window", WINDOWS, "30d")
SEGMENT_VAR = QueryVariable("segment", "Segment", "label_values(retention_customers_active, segment)", "all")
WS = 'window="$window", segment="$segment"'


def kpi(metric: str, selector: str = "") -> str:
    """A KPI gauge across workers: each series has one owner, so ``max without (instance)``."""
    return f"max without (instance) ({metric}{{{selector}}})"


def rate(metric: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}[$__rate_interval]))"
