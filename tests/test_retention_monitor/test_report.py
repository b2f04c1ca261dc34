"""`retention-monitor report`: comparison periods, changes, the documents, the CLI, and the HTML in Chromium.

The data comes from the in-process pipeline (no Kafka): a simulated 2025, preceded by half a year of
history so that the year starts with customers and its comparisons are defined.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import urllib.parse
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cohort_events import PipelineCohorts
from fixtures import free_port, json_server, seed_example
from PIL import Image, ImageChops, ImageStat
from pure_pipeline import PurePipeline

from core.errors import PeriodError
from core.settings import Settings
from retention_monitor.cli import main
from retention_monitor.report import collect
from retention_monitor.report_model import KPIS, Report
from retention_monitor.report_periods import Change, change, previous, trend, year_earlier
from retention_monitor.report_plots import PLOT_COUNT, Plot, tick_labels
from retention_monitor.report_render import duration, fmt, fmt_change, kpi_section, to_markdown, write
from streams.producers.simulate import Simulator

JULY_2024_US, END_2025_US = 1_719_792_000_000_000, 1_767_225_600_000_000
PLOT_PX = (640, 310)  # 6.4 x 3.1 inches at 100 dpi
WIDTH, HEIGHT = 1280, 4000


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


@pytest.fixture(scope="module")
def simulated() -> PurePipeline:
    settings = Settings(allowed_lateness="3650d")
    sim = Simulator(settings.facts, settings.topics, seed=7, scenario="steady", customers=300)
    messages = sim.events(JULY_2024_US, end_us=END_2025_US, rate=6000 / (549 * 86_400))
    return PurePipeline(settings).send(*(json.loads(value) for _, _, value in messages))


@pytest.fixture(scope="module")
def year_report(simulated: PurePipeline) -> tuple[Report, list[tuple[str, int, int]]]:
    steps: list[tuple[str, int, int]] = []
    report = collect(simulated, "2025", step=lambda what, done, total: steps.append((what, done, total)),
                     cohorts=PipelineCohorts(simulated))
    return report, steps


def every_plot(report: Report) -> list[Plot]:
    """The trend plots, then the cohort curves."""
    return [*report.plots, *([report.cohorts.plot] if report.cohorts and report.cohorts.plot else [])]


# -- which periods are compared ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "prev", "year"),
    [
        ("2025", "2024", "2024"),
        ("2025-Q1", "2024-Q4", "2024-Q1"),
        ("2025-Q3", "2025-Q2", "2024-Q3"),
        ("2025-01", "2024-12", "2024-01"),
        ("2025-03", "2025-02", "2024-03"),
        ("2025-W01", "2024-W52", "2024-W01"),
        ("2021-W01", "2020-W53", "2020-W01"),  # 2020 has an ISO week 53
        ("2026-W53", "2026-W52", "2025-W52"),  # 2025 has none: week 52
        ("2025-01-01", "2024-12-31", "2024-01-01"),
        ("2024-02-29", "2024-02-28", "2023-02-28"),
        ("2025-03-01", "2025-02-28", "2024-03-01"),
        ("2025-01-01T00:00:00Z/2025-02-01T00:00:00Z",
         "2024-12-01T00:00:00Z/2025-01-01T00:00:00Z", "2024-01-01T00:00:00Z/2024-02-01T00:00:00Z"),
        ("2025-03-10T08:00:00+01:00/2025-03-10T20:00:00+01:00",
         "2025-03-09T20:00:00+01:00/2025-03-10T08:00:00+01:00", "2024-03-10T08:00:00+01:00/2024-03-10T20:00:00+01:00"),
        # START on 29 February moves to the 28th and the range keeps its 36 hours
        ("2024-02-29T12:00:00Z/2024-03-02T00:00:00Z",
         "2024-02-28T00:00:00Z/2024-02-29T12:00:00Z", "2023-02-28T12:00:00Z/2023-03-02T00:00:00Z"),
    ],
)
def test_previous_and_year_earlier_periods(label: str, prev: str, year: str) -> None:
    assert (previous(label), year_earlier(label)) == (prev, year)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("label", "bounds", "count", "first", "last"),
    [
        ("2025", None, 12, "2025-01", "2025-12"),
        ("2025-Q1", None, 12, "2024-04", "2025-03"),
        ("2024-02", None, 29, "2024-02-01", "2024-02-29"),
        ("2025-W01", None, 7, "2024-12-30", "2025-01-05"),
        ("2025-03-14", ("2025-03-14T00:00:00+00:00", "2025-03-15T00:00:00+00:00"), 24,
         "2025-03-14T00:00:00Z/2025-03-14T01:00:00Z", "2025-03-14T23:00:00Z/2025-03-15T00:00:00Z"),
        # the day clocks go forward in Europe/Berlin has 23 hours
        ("2025-03-30", ("2025-03-30T00:00:00+01:00", "2025-03-31T00:00:00+02:00"), 23,
         "2025-03-30T00:00:00+01:00/2025-03-30T01:00:00+01:00", "2025-03-30T22:00:00+01:00/2025-03-30T23:00:00+01:00"),
        ("2025-01-01T00:00:00Z/2025-01-01T12:00:00Z", None, 12,
         "2025-01-01T00:00:00Z/2025-01-01T01:00:00Z", "2025-01-01T11:00:00Z/2025-01-01T12:00:00Z"),
    ],
)
def test_trend_sub_periods(label: str, bounds: tuple[str, str] | None, count: int, first: str, last: str) -> None:
    start, end = (_utc(b) for b in bounds or ("2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00"))
    subs = trend(label, start, end)
    assert (len(subs), subs[0], subs[-1]) == (count, first, last)


@pytest.mark.parametrize(
    ("label", "reason"),
    [("2025-13", "month must be in 1..12"), ("2025-Q5", "the quarter must be Q1 to Q4"),
     ("2025-W54", "Invalid week: 54"), ("2025-02-30", "day is out of range for month"),
     ("yesterday", "not a known period format"), ("2025-01-01/2025-02-01", "START and END need an offset"),
     ("2025-02-01T00:00:00Z/2025-01-01T00:00:00Z", "END must be after START")],
)
def test_bad_period_names_the_value_and_the_formats(label: str, reason: str) -> None:
    with pytest.raises(PeriodError) as info:
        previous(label)
    assert str(info.value).startswith(f"period {label!r}: {reason}")
    assert str(info.value).endswith("use 2025, 2025-Q1, 2025-03, 2025-W07, 2025-03-14 or START/END in RFC 3339")


# -- changes and how they read -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "other", "want"),
    [
        (0.95, 0.9, Change(0.95 - 0.9, (0.95 - 0.9) / 0.9)),
        (24, 20, Change(4, 0.2)),
        (-10, -20, Change(10, 0.5)),  # NPS from -20 to -10 is an improvement: relative to |-20|
        (5, 0, Change(5, None)),
        (0, 0, Change(0, None)),
        (None, 0.5, Change(None, None)),
        (0.5, None, Change(None, None)),
    ],
)
def test_change(current: float | None, other: float | None, want: Change) -> None:
    assert change(current, other) == want


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0.4, "0 s"), (45, "45 s"), (59.6, "1 min"), (725, "12 min 5 s"), (3600, "1 h"),
     (8293.9, "2 h 18 min"), (100_800, "1 d 4 h"), (172_800, "2 d")],
)
def test_durations_read_in_human_units(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_values_and_changes_format_with_undefined_as_dash_never_zero() -> None:
    assert [fmt(0.7045, "ratio"), fmt(10432.5, "money"), fmt(1234, "count"), fmt(31, "score"), fmt(5.1, "number"),
            fmt(0.0, "ratio"), fmt(None, "ratio"), fmt(None, "money")] == \
        ["70.5 %", "10,432.50 EUR", "1,234", "31.0", "5.10", "0.0 %", "—", "—"]
    assert fmt_change(Change(0.05, 0.0526), "ratio") == ("+5.0 pp", "+5.3 %")
    assert fmt_change(Change(-1800, -0.25), "seconds") == ("-30 min", "-25.0 %")
    assert fmt_change(Change(12.5, None), "money", "USD") == ("+12.50 USD", "—")
    assert fmt_change(Change(None, None), "count") == ("—", "—")


def test_tick_labels_are_short() -> None:
    assert tick_labels(["2024-12", "2025-01", "2025-02"]) == ["Dec\n2024", "Jan\n2025", "Feb"]
    assert tick_labels(["2025-02-28", "2025-03-01", "2025-03-02"]) == ["28\nFeb", "1\nMar", "2"]
    assert tick_labels(["2025-01-01T00:00:00Z/2025-01-01T01:00:00Z", "2025-01-01T01:00:00Z/2025-01-01T02:00:00Z"]) \
        == ["00\nJan 01", "01"]
    assert tick_labels(["2025-01-01T00:00:00Z/2025-01-01T00:30:00Z", "2025-01-01T00:30:00Z/2025-01-01T01:00:00Z",
                        "2025-01-01T00:00:00Z/2025-01-03T00:00:00Z"]) == ["00:00\nJan 01", "00:30", "01-01"]


def test_seed_example_compares_with_golden_values() -> None:
    # Worked example 1 of docs/contract/kpis.md: 20 customers (signed up in December), Q1 brings 5 new and 1 lost.
    report = collect(PurePipeline().send(*seed_example(20, 5, 1)), "2025-Q1", trend=False)
    assert report.labels == ("2025-Q1", "2024-Q4", "2024-Q1")
    rows = {r.kpi.key: r for r in report.rows()}
    assert (rows["retention_rate"].current, rows["retention_rate"].previous) == (0.95, None)
    assert rows["retention_rate"].changes == (Change(None, None), Change(None, None))
    assert (rows["new_customers"].current, rows["new_customers"].previous, rows["new_customers"].year_earlier) \
        == (5, 20, 0)
    assert rows["new_customers"].changes == (Change(-15, -0.75), Change(5, None))
    table = {row[0]: row for row in kpi_section(report).rows}
    assert table["retention rate"] == ["retention rate", "95.0 %", "—", ("—", ""), ("—", ""), "—", ("—", ""), ("—", "")]
    assert table["active customers at end"] == ["active customers at end", "24", "20", ("+4", "good"),
                                                ("+20.0 %", "good"), "0", ("+24", "good"), ("—", "good")]
    assert table["churn rate"][1:2] == ["5.0 %"]
    data = report.to_json()
    assert [k["key"] for k in data["kpis"]] == [k.key for k in KPIS]
    assert data["kpis"][0] == {
        "key": "retention_rate", "title": "retention rate", "unit": "ratio", "better": 1, "value": 0.95,
        "previous": None, "year_earlier": None, "change_previous": {"absolute": None, "relative": None},
        "change_year_earlier": {"absolute": None, "relative": None}}
    markdown = to_markdown(report, {})
    assert "| retention rate | 95.0 % | — | — | — | — | — | — |" in markdown
    assert "| NPS | — |" in markdown


# -- the documents -----------------------------------------------------------------------------------


def test_year_report_asks_for_every_sub_period_and_draws_every_plot(
        year_report: tuple[Report, list[tuple[str, int, int]]]) -> None:
    report, steps = year_report
    assert report.labels == ("2025", "2024", "2024")
    assert [label for label, _ in report.trend] == [f"2025-{m:02d}" for m in range(1, 13)]
    assert [p.name for p in report.plots] == ["retention", "customers", "satisfaction", "revenue", "complaints",
                                              "first-response"]
    assert all(png_size(p.png) == PLOT_PX for p in report.plots)
    # 2024 is both the previous period and the year earlier: asked for once
    assert [what for what, _, _ in steps[:3]] == ["KPIs 2025", "KPIs 2024", "KPIs 2025-01"]
    assert steps[-2:] == [("plot first-response", 2 + 12 + PLOT_COUNT, 2 + 12 + PLOT_COUNT),
                          ("cohorts", 2 + 12 + PLOT_COUNT, 2 + 12 + PLOT_COUNT)]
    assert [done for _, done, _ in steps] == sorted(done for _, done, _ in steps)


def test_markdown_links_png_files_next_to_it(year_report: tuple[Report, Any], tmp_path: Path) -> None:
    report, _ = year_report
    written = write(report, tmp_path / "review.md", "md")
    text = (tmp_path / "review.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^]]+\]\(([^)]+)\)", text)
    assert links == [f"review-{p.name}.png" for p in every_plot(report)]
    assert written == [tmp_path / "review.md", *(tmp_path / link for link in links)]
    assert all(png_size((tmp_path / link).read_bytes()) == PLOT_PX for link in links)
    # The simulation starts in July 2024: 2024 had no customers at its start, so its retention is undefined.
    assert re.search(r"^\| retention rate \| \d+\.\d % \| — \| — \| — \|$", text, re.MULTILINE), text[:2000]
    assert "| 2025-01 | " in text  # the cohort table: the simulated customers of January 2025
    for title in ("Cohorts", "Customer retention", "Revenue retention", "Churn reasons", "ABC classes",
                  "first response and resolution", "backlog, reopens and complaints",
                  "Feedback, NPS and CSAT", "Sales-team retention"):
        assert title in text


def test_html_is_one_file_with_the_plots_embedded(year_report: tuple[Report, Any], tmp_path: Path) -> None:
    report, _ = year_report
    assert write(report, tmp_path / "review.html", "html") == [tmp_path / "review.html"]
    assert sorted(tmp_path.iterdir()) == [tmp_path / "review.html"]
    page = (tmp_path / "review.html").read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [base64.b64decode(data) for data in embedded] == [p.png for p in every_plot(report)]
    assert "<script" not in page
    assert "http" not in page  # nothing to fetch: the file stands alone


# -- the command -------------------------------------------------------------------------------------


def kpi_server(source: PurePipeline) -> AbstractContextManager[str]:
    """``GET /kpis`` and ``GET /cohorts`` answered by the in-process pipeline, like a worker's web port."""

    def answer(path: str) -> tuple[int, Any]:
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/cohorts":
            return 200, PipelineCohorts(source).cohorts({k: v[0] for k, v in query.items()})
        return 200, source.answer(query["period"][0], query.get("segment", ["all"])[0])

    return json_server(answer)


def test_cli_writes_the_report_and_prints_json(simulated: PurePipeline, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with kpi_server(simulated) as url:
        assert main(["report", "--period", "2025-Q2", "--format", "md", "--url", url]) == 0
        assert main(["report", "--period", "2025-Q2", "--output", "q2.html", "--url", url]) == 0
        capsys.readouterr()
        assert main(["report", "--period", "2025-Q2", "--segment", "plan:pro", "--json", "--url", url]) == 0
        data = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["q2.html", "retention-report-2025-Q2.md", *(f"retention-report-2025-Q2-{name}.png" for name in
                                                      ("retention", "customers", "satisfaction", "revenue",
                                                       "complaints", "first-response", "cohorts"))])
    assert [data[k]["label"] for k in ("period", "previous", "year_earlier")] == ["2025-Q2", "2025-Q1", "2024-Q2"]
    assert data["segment"] == "plan:pro"
    expected = simulated.answer("2025-Q2", "plan:pro")["kpis"]["churn_rate"]
    assert next(k["value"] for k in data["kpis"] if k["key"] == "churn_rate") == expected


def test_unwritable_output_is_one_line_with_exit_2(simulated: PurePipeline, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("a file, not a directory")
    with kpi_server(simulated) as url:
        assert main(["report", "--period", "2025-W07", "--output", str(tmp_path / "taken" / "r.html"),
                     "--url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --output '{tmp_path / 'taken' / 'r.html'}': cannot write: ")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2025-13"], "error: period '2025-13': month must be in 1..12; use 2025, 2025-Q1"),
        (["--period", "2025", "--format", "pdf"], "error: --format 'pdf' is not one of md, html"),
        (["--period", "2025", "--segment", "plan:gold"], "error: segment 'plan:gold' is not one of all, plan:basic"),
    ],
)
def test_bad_options_are_one_line_with_exit_2(args: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", *args, "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1


def test_unreachable_worker_is_one_line_with_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["report", "--period", "2025-Q1", "--url", f"http://127.0.0.1:{port}"]) == 3
    err = capsys.readouterr().err
    assert f"no worker answers at http://127.0.0.1:{port}" in err
    assert len(err.strip().splitlines()) == 1


# -- the HTML report renders in headless Chromium, and the screenshot shows the plots --------------

_PROBE = """<script>window.addEventListener("load", () => { for (const img of document.images) {
const r = img.getBoundingClientRect(); img.setAttribute("data-probe", [img.complete && img.naturalWidth > 0 ? 1 : 0,
img.naturalWidth, img.naturalHeight, r.left, r.top + window.scrollY, r.width, r.height].map(Math.round).join(","));
} });</script>"""


def distance(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two same-size images, in grey levels (worst channel)."""
    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean)


def chromium(tmp: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "./run test installs Debian's chromium package"
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={tmp / ('profile-' + name)}", f"--window-size={WIDTH},{HEIGHT}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_html_report_of_a_simulated_year_renders_in_chromium_with_the_plots(
        year_report: tuple[Report, Any], tmp_path: Path) -> None:
    report, _ = year_report
    page = tmp_path / "report-2025.html"
    write(report, page, "html")
    # Where the browser lays out each image, and whether it decoded it: the page plus a probe script.
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, "dom", "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    probes = [[int(n) for n in p.split(",")] for p in re.findall(r'data-probe="([-\d,]+)"', dom.stdout)]
    assert len(probes) == PLOT_COUNT + 1, dom.stdout[:500]  # and the cohort curves
    assert all(p[:3] == [1, *PLOT_PX] for p in probes), probes

    shot = tmp_path / "screenshot.png"
    result = chromium(tmp_path, "shot", f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as raw:
        image = raw.convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    for plot, (_, _, _, x, y, w, h) in zip(every_plot(report), probes, strict=True):
        assert x >= 0, (plot.name, x)
        assert y >= 0, (plot.name, y)
        assert x + w <= WIDTH, (plot.name, x, w)
        assert y + h <= HEIGHT, (plot.name, y, h)
        shown = image.crop((x, y, x + w, y + h))
        assert len(shown.getcolors(maxcolors=w * h) or []) > 100, plot.name
        # The pixels on screen are the plot itself, scaled to its box: much closer to it than blank space is
        # (measured: 0.4-3 against 6-85 grey levels), so neither a broken-image icon nor an empty box passes.
        with Image.open(io.BytesIO(plot.png)) as raw:
            drawn = raw.convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
        blank = Image.new("RGB", (w, h), "white")
        assert distance(shown, drawn) < 0.5 * distance(blank, drawn), plot.name
    # Between the two plots of a row the page is blank: so "many colours" above really means a plot.
    (_, _, _, x1, y1, w1, h1), (_, _, _, x2, _, _, _) = probes[:2]
    assert x2 - (x1 + w1) >= 4
    assert len(image.crop((x1 + w1 + 1, y1, x2 - 1, y1 + h1)).getcolors() or []) == 1
