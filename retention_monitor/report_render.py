"""The report as a document: tables of formatted values, then Markdown or one self-contained HTML file.

Undefined values read "—" (never 0); ratios change in percentage points, durations read in human
units. Cells may carry a tone ("good" or "bad": the direction of a change for that KPI) that the
HTML colours and the Markdown ignores.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retention_monitor.report_cohorts import TITLES, table_html, table_markdown
from retention_monitor.report_model import Report
from retention_monitor.report_periods import Change
from retention_monitor.report_plots import Plot, value

UNDEFINED = "—"
Answer = Mapping[str, Any]
Cell = str | tuple[str, str]  # text, or (text, tone) where tone is "good" or "bad"


def duration(seconds: float | None) -> str:
    """Seconds in the two largest human units: ``45 s``, ``12 min 5 s``, ``2 h 18 min``, ``1 d 4 h``."""
    if seconds is None:
        return UNDEFINED
    s = round(seconds)
    for size, unit, small, small_unit in ((86_400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s")):
        if s >= size:
            rest = (s % size) // small
            return f"{s // size} {unit}" + (f" {rest} {small_unit}" if rest else "")
    return f"{s} s"


def fmt(v: float | None, unit: str, currency: str = "EUR") -> str:
    if v is None:
        return UNDEFINED
    return {"ratio": lambda: f"{100 * v:.1f} %", "money": lambda: f"{v:,.2f} {currency}",
            "count": lambda: f"{v:,.0f}", "score": lambda: f"{v:.1f}",
            "seconds": lambda: duration(v)}.get(unit, lambda: f"{v:,.2f}")()


def fmt_change(c: Change, unit: str, currency: str = "EUR") -> tuple[str, str]:
    """(absolute, relative) change; ratios move in percentage points, durations in human units."""
    a, r = c.absolute, c.relative
    rel = UNDEFINED if r is None else f"{100 * r:+.1f} %"
    if a is None:
        return UNDEFINED, rel
    sign = "+" if a >= 0 else "-"
    text = {"ratio": f"{100 * a:+.1f} pp", "money": f"{a:+,.2f} {currency}", "count": f"{a:+,.0f}",
            "score": f"{a:+.1f}", "seconds": f"{sign}{duration(abs(a))}"}.get(unit, f"{a:+,.2f}")
    return text, rel


def _tone(c: Change, better: int) -> str:
    return "" if not c.absolute else ("good" if c.absolute * better > 0 else "bad")


# -- the document ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    note: str = ""


def shown(report: Report) -> list[int]:
    """Which of the answers get a column: for a year the previous period *is* the year earlier."""
    return [0, 1] if report.labels[1] == report.labels[2] else [0, 1, 2]


def kpi_section(report: Report) -> Section:
    columns = shown(report)
    rows: list[list[Cell]] = []
    for r in report.rows():
        cells: list[Cell] = [r.kpi.title, fmt(r.current, r.kpi.unit, report.currency)]
        for i in columns[1:]:
            other, c = (r.previous, r.year_earlier)[i - 1], r.changes[i - 1]
            absolute, relative = fmt_change(c, r.kpi.unit, report.currency)
            tone = _tone(c, r.kpi.better)
            cells += [fmt(other, r.kpi.unit, report.currency), (absolute, tone), (relative, tone)]
        rows.append(cells)
    header = ["KPI", report.labels[0], *(x for i in columns[1:] for x in (report.labels[i], "change", "%"))]
    return Section("KPIs against the previous period and a year earlier", header, rows)


def detail_sections(report: Report) -> list[Section]:
    a = [report.answers[i] for i in shown(report)]
    labels = [str(x["period"]["label"]) for x in a]
    durations = [[f"{name}, {x['period']['label']}", f"{x['kpis'][key]['count']:,}",
                  *(duration(x["kpis"][key][q]) for q in ("mean", "p50", "p90", "p99"))]
                 for name, key in (("first response", "first_response_seconds"), ("resolution", "resolution_seconds"))
                 for x in a]
    return [
        _churn_reasons(a, labels),
        _abc_classes(a[0], report.currency),
        Section("Support: first response and resolution times", ("", "count", "mean", "p50", "p90", "p99"),
                durations, "A sample belongs to the period of the reply (resolution)."),
        *_triples(report, sorted({c for x in a for c in x["kpis"]["complaints_by_category"]})),
    ]


def _churn_reasons(a: list[Any], labels: list[str]) -> Section:
    names = {r for x in a for r in x["kpis"]["lost_by_reason"]}
    lost = {r: [int(x["kpis"]["lost_by_reason"].get(r, 0)) for x in a] for r in names}
    total_lost = sum(n[0] for n in lost.values())
    reasons = [[r, f"{n[0]:,}", fmt(n[0] / total_lost if total_lost else None, "ratio"), *(f"{x:,}" for x in n[1:])]
               for r, n in sorted(lost.items(), key=lambda item: (-item[1][0], item[0]))]
    return Section("Churn reasons", ("reason", labels[0], "share of lost", *labels[1:]), reasons,
                   "" if reasons else "No customers were lost in these periods.")


def _abc_classes(cur: Any, cu: str) -> Section:
    abc = cur["abc"]
    people = sum(abc["customers"].values())
    classes = [[c, f"{abc['customers'][c]:,}", fmt(abc["customers"][c] / people if people else None, "ratio"),
                fmt(abc["clv_share"][c], "ratio"), fmt(_times(abc["clv_share"][c], abc["total_clv"]), "money", cu)]
               for c in "ABC"]
    classes.append(["total", f"{people:,}", "", "", fmt(abc["total_clv"], "money", cu)])
    return Section(f"ABC classes (by historical CLV, as of {abc['as_of']})",
                   ("class", "customers", "share of customers", "CLV share", f"CLV ({cu})"), classes)


def _triples(report: Report, categories: list[str]) -> list[Section]:
    """The support, feedback and sales-team figures of the periods side by side."""
    return [
        _triple(report, "Support: backlog, reopens and complaints", [
            ("tickets opened", ("inputs", "tickets_opened"), "count"),
            ("awaiting first response (at the end)", ("kpis", "tickets_awaiting_first_response"), "count"),
            ("awaiting resolution (at the end)", ("kpis", "tickets_awaiting_resolution"), "count"),
            ("reopens", ("kpis", "reopens"), "count"),
            ("complaints", ("kpis", "complaints"), "count"),
            *((f"complaints, {c}", ("kpis", "complaints_by_category", c), "count") for c in categories),
            ("complaints per 1,000 active", ("kpis", "complaints_per_1000_active"), "number")]),
        _triple(report, "Feedback, NPS and CSAT", [
            ("NPS promoters (9-10)", ("inputs", "nps_promoters"), "count"),
            ("NPS passives (7-8)", ("inputs", "nps_passives"), "count"),
            ("NPS detractors (0-6)", ("inputs", "nps_detractors"), "count"),
            ("NPS", ("kpis", "nps"), "score"),
            ("CSAT responses", ("inputs", "csat_responses"), "count"),
            ("CSAT 4-5", ("inputs", "csat_good"), "count"),
            ("CSAT", ("kpis", "csat"), "ratio"),
            ("feedback received", ("inputs", "feedback_received"), "count"),
            ("feedback answered", ("inputs", "feedback_responded"), "count"),
            ("feedback response rate", ("kpis", "feedback_response_rate"), "ratio")]),
        _triple(report, "Sales-team retention", [
            ("reps at the start", ("inputs", "reps_at_start"), "count"),
            ("reps joined", ("inputs", "reps_joined"), "count"),
            ("reps left", ("inputs", "reps_left"), "count"),
            ("reps at the end", ("inputs", "reps_at_end"), "count"),
            ("reps of the start who stayed", ("inputs", "reps_stayed"), "count"),
            ("sales-team retention", ("kpis", "sales_rep_retention_rate"), "ratio"),
            ("team size, end / start", ("kpis", "sales_team_size_ratio"), "ratio")],
            "" if report.segment == "all" else "Reps have no customer segment: reported for segment all only."),
    ]


def _times(share: float | None, total: float | None) -> float | None:
    return None if share is None or total is None else share * total


def _triple(report: Report, title: str, items: Sequence[tuple[str, tuple[str, ...], str]], note: str = "") -> Section:
    answers = [report.answers[i] for i in shown(report)]
    rows = [[name, *(fmt(_count(a, path, unit), unit, report.currency) for a in answers)] for name, path, unit in items]
    return Section(title, ("", *(str(a["period"]["label"]) for a in answers)), rows, note)


def _count(answer: Answer, path: tuple[str, ...], unit: str) -> float | None:
    # A category absent from one period's breakdown had no complaints there: 0, not undefined.
    v = value(answer, *path)
    return 0.0 if v is None and unit == "count" and path[-2:-1] == ("complaints_by_category",) else v


def _subtitle(report: Report) -> str:
    p = report.answers[0]["period"]
    _, prev, year = report.labels
    against = f"{prev} (previous period and a year earlier)" if prev == year else \
        f"{prev} (previous period) and {year} (a year earlier)"
    return (f"[{p['start']} .. {p['end']}) · segment {report.segment} · compared with {against} · "
            f"generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")


def _text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def to_markdown(report: Report, images: Mapping[str, str]) -> str:
    """Markdown with the plots linked as ``images[plot.name]`` (files next to the document)."""
    def table(s: Section) -> list[str]:
        lines = [f"## {s.title}", ""]
        if s.rows:
            lines += ["| " + " | ".join(s.header) + " |", "|" + "---|" * len(s.header)]
            lines += ["| " + " | ".join(_text(c) for c in row) + " |" for row in s.rows]
        return [*lines, *(["", s.note] if s.note else []), ""]

    out = [f"# Retention report {report.labels[0]}", "", _subtitle(report), "", *table(kpi_section(report))]
    if report.plots:
        out += ["## Trends", "", *(f"![{p.title}]({images[p.name]})\n" for p in report.plots)]
    if report.cohorts is not None:
        c = report.cohorts
        out += ["## Cohorts", "", c.note, ""]
        out += [line for title, t in zip(TITLES, (c.customers, c.revenue), strict=True) if t
                for line in table_markdown(title, t)]
        out += [f"![{c.plot.title}]({images[c.plot.name]})\n"] if c.plot else []
    for s in detail_sections(report):
        out += table(s)
    return "\n".join(out)


_CSS = """body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{margin:0 0 4px}.sub{color:#666;font-size:13px;margin-bottom:16px}h2{margin:24px 0 8px;font-size:18px}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #e3e3e3}
td:not(:first-child),th:not(:first-child){text-align:right}th{background:#f3f4f6}
.good{color:#1f7a6d}.bad{color:#c0392b}.note{color:#666;font-size:12px;margin-top:4px}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:12px}figure{margin:0}figure img{width:100%}
h3{margin:16px 0 6px;font-size:15px}
table.cohorts td:not(:first-child),table.cohorts th:not(:first-child){text-align:center;min-width:52px}"""


def to_html(report: Report) -> str:
    """One self-contained HTML file: the plots are embedded as base64 ``data:`` URIs."""
    e = html.escape

    def cell(c: Cell, tag: str = "td") -> str:
        text, tone = (c, "") if isinstance(c, str) else c
        return f"<{tag}{f' class={tone!r}' if tone else ''}>{e(text)}</{tag}>"

    def table(s: Section) -> str:
        head = "".join(cell(h, "th") for h in s.header)
        body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in s.rows)
        grid = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if s.rows else ""
        return f"<h2>{e(s.title)}</h2>{grid}" + (f'<p class="note">{e(s.note)}</p>' if s.note else "")

    def figure(p: Plot) -> str:
        png = base64.b64encode(p.png).decode()
        return f'<figure><img alt="{e(p.title)}" src="data:image/png;base64,{png}"></figure>'

    plots = f'<h2>Trends</h2><div class="plots">{"".join(map(figure, report.plots))}</div>' if report.plots else ""
    plots += _cohorts_html(report, figure)
    title = f"Retention report {report.labels[0]}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1><div class=\"sub\">{e(_subtitle(report))}</div>"
            f"{table(kpi_section(report))}{plots}{''.join(table(s) for s in detail_sections(report))}</body></html>\n")


def _cohorts_html(report: Report, figure: Callable[[Plot], str]) -> str:
    c = report.cohorts
    if c is None:
        return ""
    tables = "".join(table_html(title, t) for title, t in zip(TITLES, (c.customers, c.revenue), strict=True) if t)
    curves = f'<div class="plots">{figure(c.plot)}</div>' if c.plot else ""
    return f'<h2>Cohorts</h2><p class="note">{html.escape(c.note)}</p>{tables}{curves}'


def write(report: Report, path: Path, fmt_name: str) -> list[Path]:
    """Write the document (and, for Markdown, the PNGs next to it); returns the files written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt_name == "html":
        path.write_text(to_html(report), encoding="utf-8")
        return [path]
    plots = [*report.plots, *([report.cohorts.plot] if report.cohorts and report.cohorts.plot else [])]
    images = {p.name: f"{path.stem}-{p.name}.png" for p in plots}
    for p in plots:
        (path.parent / images[p.name]).write_bytes(p.png)
    path.write_text(to_markdown(report, images), encoding="utf-8")
    return [path, *(path.parent / name for name in images.values())]
