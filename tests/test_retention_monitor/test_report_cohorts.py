"""The report's cohort section: the golden tables (tests/cohort_events.py) as they stood at the period's end."""

from __future__ import annotations

import io
import re

from cohort_events import PipelineCohorts, shop_events
from PIL import Image
from pure_pipeline import PurePipeline

from retention_monitor.cohorts_cli import shade_rgb
from retention_monitor.report import collect
from retention_monitor.report_cohorts import collect_cohorts, table_html, table_markdown
from retention_monitor.report_render import to_html


def shop() -> PurePipeline:
    return PurePipeline().send(*shop_events())


def cells(table: object, key: str = "numerator") -> dict[str, list[object]]:
    assert isinstance(table, dict)
    return {row["cohort"]: [cell[key] for cell in row["ages"]] for row in table["cohorts"] if row["customers"]}


def test_the_section_is_the_twelve_months_up_to_the_period_end_as_they_stood_then() -> None:
    p = shop()
    section = collect_cohorts(PipelineCohorts(p), p.answer("2025-03"), "all")
    assert section.customers is not None
    assert section.revenue is not None
    assert [row["cohort"] for row in section.customers["cohorts"]] == [f"2024-{m:02d}" for m in range(4, 13)] + [
        "2025-01", "2025-02", "2025-03"]
    # At 1 April: b's reactivation (5 April) and f's churn (1 April, 00:00, just at the end) have not happened.
    assert cells(section.customers) == {"2025-01": [3, 2, 1], "2025-02": [2, 2]}
    assert cells(section.customers, "provisional") == {"2025-01": [False] * 3, "2025-02": [False] * 2}
    assert cells(section.revenue) == {"2025-01": [150.0, -20.0, 80.0], "2025-02": [40.0, 0.0]}
    assert section.plot is not None
    with Image.open(io.BytesIO(section.plot.png)) as image:
        assert image.size == (640, 310)


def test_cells_are_shaded_by_value_in_html_and_listed_in_markdown() -> None:
    p = shop()
    section = collect_cohorts(PipelineCohorts(p), p.answer("2025-03"), "all")
    assert section.customers is not None
    page = table_html("Customer retention", section.customers)
    r, g, b = shade_rgb(0.75)
    assert f'<td style="background:rgb({r},{g},{b});color:#fff">75.0 %</td>' in page
    assert re.search(r"<tr><td>2025-03</td><td>0</td><td style=[^>]+>—</td></tr>", page)
    assert "| 2025-01 | 4 | 75.0 % | 50.0 % | 25.0 % |" in table_markdown("Customer retention", section.customers)


def test_the_report_has_the_section_after_the_trends() -> None:
    p = shop()
    report = collect(p, "2025-03", cohorts=PipelineCohorts(p))
    page = to_html(report)
    assert page.index("<h2>Trends</h2>") < page.index("<h2>Cohorts</h2>") < page.index("<h2>Churn reasons</h2>")
    assert page.count('<table class="cohorts">') == 2


def test_no_section_for_an_abc_class() -> None:
    p = shop()
    section = collect_cohorts(PipelineCohorts(p), p.answer("2025-03", "abc:A"), "abc:A")
    assert (section.customers, section.revenue, section.plot) == (None, None, None)
    assert section.note == "Cohorts are by sign-up segment: not shown for an ABC class."
