"""A small typed builder of Grafana dashboards (panels, rows, template variables) and PromQL helpers.

KPI gauges have one owning worker per series, so every KPI query reads them as
``max without (instance) (...)`` -- the ratios through the recording rules of :func:`recording_rules`,
which record exactly that. Every panel and query names the datasource through the ``datasource``
template variable, so the dashboards work in any Grafana, whatever its Prometheus datasource is called.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
# what Grafana's "Import" asks for: the Prometheus to put into the datasource variable
IMPORT_INPUT = "DS_PROMETHEUS"
SCHEMA_VERSION = 39
GRAFANA_VERSION = "10.4.0"  # what the import copy says it needs: dashboards of schema 39
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
    """A time series (default) or stat panel, or a ``matrix`` table: the instant values laid out with one
    row per value of the label ``matrix[0]`` and one column per value of ``matrix[1]`` (both numbers),
    each cell shaded by its value."""

    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat", "table"] = "timeseries"
    description: str = ""
    width: int = 8
    height: int = 8
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    matrix: tuple[str, str] = ("", "")

    def to_json(self, panel_id: int, x: int, y: int) -> JSON:
        defaults: JSON = {"unit": self.unit}
        for key, value in (("decimals", self.decimals), ("min", self.min), ("max", self.max)):
            if value is not None:
                defaults[key] = value
        if self.kind == "table":
            return self._table(defaults) | {"gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
                                            "id": panel_id}
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


    def _table(self, defaults: JSON) -> JSON:
        row, column = self.matrix
        numbers = [{"targetField": f, "destinationType": "number"} for f in (row, column)]
        return {
            "datasource": dict(DATASOURCE),
            "description": self.description,
            "fieldConfig": {"defaults": defaults | {
                "color": {"mode": "continuous-RdYlGr"},
                "custom": {"align": "center", "cellOptions": {"type": "color-background", "mode": "gradient"}},
            }, "overrides": []},
            "options": {"cellHeight": "sm", "showHeader": True,
                        "sortBy": [{"displayName": f"{row}\\{column}", "desc": False}]},
            "targets": [t.to_json() | {"format": "table", "instant": True, "range": False} for t in self.targets],
            # the labels as numbers (so age 10 follows age 9), sorted by column, then spread into the matrix
            "transformations": [
                {"id": "convertFieldType", "options": {"conversions": numbers, "fields": {}}},
                {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": column}]}},
                {"id": "groupingToMatrix", "options": {"columnField": column, "rowField": row, "valueField": "Value"}},
            ],
            "title": self.title,
            "type": "table",
        }


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right and wrapped at the grid width."""

    title: str
    panels: tuple[Panel, ...]


def _variable(name: str, label: str, default: str, kind: str, **fields: Any) -> JSON:
    """What every template variable has (one value, no "All"), and its own ``fields``; keys sorted as
    Grafana exports them."""
    common = {"current": {"selected": True, "text": default, "value": default}, "hide": 0, "includeAll": False,
              "label": label, "multi": False, "name": name, "skipUrlSync": False, "type": kind}
    return dict(sorted({**common, **fields}.items()))


@dataclass(frozen=True)
class CustomVariable:
    """A template variable with a fixed list of values."""

    name: str
    label: str
    values: tuple[str, ...]
    default: str

    def to_json(self) -> JSON:
        return _variable(self.name, self.label, self.default, "custom", query=",".join(self.values),
                         options=[{"selected": v == self.default, "text": v, "value": v} for v in self.values])


@dataclass(frozen=True)
class QueryVariable:
    """A template variable whose values come from a Prometheus query (e.g. ``label_values``)."""

    name: str
    label: str
    query: str
    default: str

    def to_json(self) -> JSON:
        return _variable(self.name, self.label, self.default, "query", datasource=dict(DATASOURCE),
                         definition=self.query, options=[], query=self.query, refresh=2, regex="", sort=1)


@dataclass(frozen=True)
class DatasourceVariable:
    """The Prometheus every panel queries. ``default`` is Grafana's default datasource, which is what
    file provisioning needs; the import copy (:func:`for_import`) lets "Import" ask for one instead."""

    name: str = "datasource"
    label: str = "Prometheus"
    default: str = "default"

    def to_json(self) -> JSON:
        return _variable(self.name, self.label, self.default, "datasource", options=[], query="prometheus",
                         refresh=1, regex="")


Variable = CustomVariable | QueryVariable | DatasourceVariable


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
            "templating": {"list": [DatasourceVariable().to_json(), *(v.to_json() for v in self.variables)]},
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
_RECORDED = re.compile(r"\bretention:\w+:max\b")
# the currencies Grafana's unit picker has a `currencyXXX` unit for
GRAFANA_CURRENCIES = frozenset({
    "USD", "GBP", "EUR", "JPY", "RUB", "UAH", "BRL", "DKK", "ISK", "NOK", "SEK", "CZK", "CHF", "PLN", "ZAR",
    "INR", "KRW", "IDR", "PHP", "VND", "TRY", "MYR", "XPF", "BGN", "PYG", "UYU", "ILS"})


def recorded(metric: str) -> str:
    """The recording rule's name of a KPI gauge read across workers (``level:metric:operation``):
    ``retention_customer_churn_ratio`` -> ``retention:customer_churn_ratio:max``."""
    return f"retention:{metric.removeprefix('retention_')}:max"


def kpi(metric: str, selector: str = "") -> str:
    """A KPI gauge across workers: each series has one owner, so ``max without (instance)``; a ratio
    reads the series its recording rule keeps (:func:`recording_rules`)."""
    if metric.endswith("_ratio"):
        return f"{recorded(metric)}{{{selector}}}"
    return f"max without (instance) ({metric}{{{selector}}})"


def recording_rules(exprs: Iterable[str]) -> list[JSON]:
    """The recording rules of the recorded series ``exprs`` read, sorted by name."""
    names = sorted({m.group(0) for e in exprs for m in _RECORDED.finditer(e)})
    return [{"record": name, "expr": f"max without (instance) (retention_{name.split(':')[1]})"} for name in names]


def rate(metric: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}[$__rate_interval]))"


def money(currency: str) -> str:
    """Grafana's unit of an amount in ``currency`` (ISO 4217); codes Grafana has no unit for get a suffix."""
    return f"currency{currency}" if currency in GRAFANA_CURRENCIES else f"suffix: {currency}"


def for_import(dashboard: JSON) -> JSON:
    """``dashboard`` as Grafana's "Export for sharing externally" writes it: "Import" asks for a Prometheus
    (input ``DS_PROMETHEUS``) and makes it the datasource variable's value."""
    out = copy.deepcopy(dashboard)
    for variable in out["templating"]["list"]:
        if variable["type"] == "datasource":
            ref = "${" + IMPORT_INPUT + "}"
            variable["current"] = {"selected": True, "text": ref, "value": ref}
    kinds = sorted({p["type"] for p in out["panels"] if p["type"] != "row"})
    out["__inputs"] = [{"name": IMPORT_INPUT, "label": "Prometheus", "description": "the Prometheus that "
                        "scrapes the retention-monitor workers", "type": "datasource", "pluginId": "prometheus",
                        "pluginName": "Prometheus"}]
    out["__requires"] = [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
                         {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
                         *({"type": "panel", "id": k, "name": k, "version": ""} for k in kinds)]
    return out
