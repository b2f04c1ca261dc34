"""The workers mode's pure parts: its arguments, counting, assignment and answer checks, ratios and
targets, the table's cells, results.json and the plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures import usage_error
from prometheus_client import CollectorRegistry, generate_latest

from bench import plot
from bench.events import OUT
from bench.harness import parse_args
from bench.workers_plot import draw, goals, series
from bench.workers_report import owned_cell, rate_cell, row_cells, scaling_table, write_scaling
from bench.workers_stats import (
    Handover,
    Look,
    ScaleResult,
    compare,
    covers,
    differences,
    distinct_processed,
    duplicates,
    kpi_answer,
    ready_look,
    scaling_targets,
    workers,
)
from streams.telemetry import PipelineMetrics

MIB = 2**20

# -- arguments ---------------------------------------------------------------------------------------


def test_workers_are_distinct_and_ascending_and_change_the_defaults() -> None:
    args = parse_args(["--workers", "4, 1,2,2", "--skip", "handover"])
    assert args.workers == [1, 2, 4]
    assert args.partitions == 8
    assert args.output == OUT / "workers.json"
    assert (args.period, args.segment) == ("2025", "all")
    plain = parse_args([])
    assert (plain.workers, plain.partitions, plain.output) == (None, 4, OUT / "results.json")
    assert parse_args(["--workers", "1,3", "--partitions", "3"]).partitions == 3


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--workers", "1,x"], "--workers: 'x' is not an integer"),
        (["--workers", ","], "--workers: ',' names no number"),
        (["--workers", "0,1"], "--workers: 0 is not between 1 and 64"),
        (["--workers", "2,4"], "--workers: 2,4 lacks 1 (every figure is compared with one worker)"),
        (["--workers", "1,4", "--partitions", "3"], "--workers: 4 workers but 3 partitions"),
        (["--workers", "1,2", "--skip", "quix"], "--skip: 'quix' does not apply with --workers (only idle, handover)"),
        (["--workers", "1,2", "--repeat", "3"], "--repeat: one repeat only with --workers"),
    ],
)
def test_bad_workers_arguments_are_one_line(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert named in usage_error(parse_args, argv, capsys)


# -- counting, assignments, answers ------------------------------------------------------------------


def metrics_page(applied: dict[str, int], rejected: int, duplicates: int) -> str:
    """A ``/metrics`` page as the worker exports it (its own counters, in a registry of their own)."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry)
    metrics.count(applied, duplicates, {}, [], 0.0)
    metrics.rejected.labels("schema").inc(rejected)
    return generate_latest(registry).decode()


def test_processed_counts_replays_once() -> None:
    page = metrics_page({"order.placed": 700, "customer.signed_up": 300}, rejected=5, duplicates=40)
    assert duplicates(page) == 40
    assert distinct_processed(page) == 1000 + 5 - 40
    assert distinct_processed("") == duplicates("") == 0


def test_ready_looks_read_the_partitions_of_200_and_503() -> None:
    assert ready_look(200, '{"ready": true, "partitions": [3, 1]}') == Look(200, (1, 3))
    look = ready_look(503, '{"ready": false, "partitions": []}')
    assert (look.ready, look.partitions) == (False, ())
    assert ready_look(0, "") == Look(0)
    assert ready_look(503, "[1, 2]") == Look(503)  # not the object /ready answers


def test_covers_means_every_partition_exactly_once() -> None:
    assert covers([[0, 1], [2, 3]], 4)
    assert covers([[3, 2, 1, 0]], 4)
    assert not covers([[0, 1], [1, 2, 3]], 4)  # partition 1 twice: a rebalance under way
    assert not covers([[0, 1], [3]], 4)
    assert not covers([[0, 1, 2, 3, 4]], 4)
    assert not covers([], 1)


def test_a_kpi_answer_loses_its_worker_block_and_only_200_counts() -> None:
    body = json.dumps({"kpis": {"churn_rate": 0.1}, "worker": {"partitions": [0]}})
    assert kpi_answer(200, body) == {"kpis": {"churn_rate": 0.1}}
    assert kpi_answer(503, '{"error": "the cluster cannot answer now"}') is None
    assert kpi_answer(200, "not json") is None
    assert kpi_answer(200, "[1]") is None


def test_differences_name_the_paths_that_differ() -> None:
    a = {"kpis": {"churn_rate": 0.1, "lost": [1, 2, 3]}, "segment": "all", "only_a": 1}
    b = {"kpis": {"churn_rate": 0.2, "lost": [1, 5, 3]}, "segment": "all"}
    assert differences(a, b) == ["kpis.churn_rate: 0.1 != 0.2", "kpis.lost[1]: 2 != 5", "only_a: 1 != (missing)"]
    assert differences(a, a) == []
    assert differences([1, 2], [1, 2, 3]) == [".: [1, 2] != [1, 2, 3]"]
    assert len(differences({str(i): i for i in range(10)}, {str(i): -i for i in range(1, 11)}, limit=3)) == 3


# -- ratios and targets ------------------------------------------------------------------------------


def result(workers: int, *, cpu: float | None = 80.0, after_mib: list[float] | None = None,
           exact: bool | None = True) -> ScaleResult:  # fmt: skip
    after = after_mib if after_mib is not None else [100 + 100 / workers] * workers
    return ScaleResult(workers, events=40_000, customers=1024, cpu_us_per_event=cpu, events_per_s=10_000.0,
                       owned=[list(range(i, 8, workers)) for i in range(workers)],
                       rss_idle_bytes=[100 * MIB] * workers, rss_after_bytes=[round(m * MIB) for m in after],
                       exact=exact)  # fmt: skip


def test_growth_per_customer_is_each_worker_against_the_idle_mean() -> None:
    r = result(2, after_mib=[150.0, 160.0])
    r.rss_idle_bytes = [99 * MIB, 101 * MIB]
    assert r.growth_per_customer == [50 * 1024, 60 * 1024]
    assert (r.growth_mean, r.growth_max) == (55 * 1024, 60 * 1024)
    r.rss_idle_bytes = []  # --skip idle
    assert r.growth_per_customer == [None, None]
    assert (r.growth_mean, r.growth_max) == (None, None)


def test_ratios_are_against_one_worker() -> None:
    one, two, four = result(1, cpu=80.0), result(2, cpu=88.0), result(4, cpu=120.0, after_mib=[140, 125, 125, 125])
    compared = compare([one, two, four])
    assert [c.workers for c in compared] == [1, 2, 4]
    assert compared[0].cpu_ratio == compared[0].memory_ratio == 1.0
    assert compared[1].cpu_ratio == pytest.approx(1.1)
    assert compared[1].memory_ratio == pytest.approx(0.5)  # 50 MiB of 100 MiB
    assert compared[2].memory_ratio == pytest.approx(0.4)  # the largest worker: 40 MiB
    assert compared[2].memory_goal == pytest.approx(0.3)
    assert compare([result(2)])[0].cpu_ratio is None  # nothing to compare with


def test_targets_judge_cpu_memory_and_exactness() -> None:
    one, two, four = result(1, cpu=80.0), result(2, cpu=88.0), result(4, cpu=120.0, after_mib=[140, 125, 125, 125])
    targets = {t.name: t for t in scaling_targets([one, two, four])}
    assert set(targets) == {"CPU per event, 2 workers", "memory per customer, 2 workers", "CPU per event, 4 workers",
                            "memory per customer, 4 workers", "exact across workers"}  # fmt: skip
    cpu2 = targets["CPU per event, 2 workers"]
    assert (cpu2.value, cpu2.verdict) == ("1.10 x", "pass")
    assert targets["CPU per event, 4 workers"].verdict == "fail"
    assert targets["memory per customer, 2 workers"].verdict == "pass"  # 0.5 ≤ 0.6
    assert targets["memory per customer, 4 workers"].verdict == "fail"  # 0.4 > 0.3
    assert "≤ 0.30 x" in targets["memory per customer, 4 workers"].goal
    assert targets["exact across workers"].verdict == "pass"
    two.exact = False
    assert scaling_targets([one, two])[-1].value == "no"
    two.exact, two.cpu_us_per_event = None, None
    last = scaling_targets([one, two])
    assert (last[0].verdict, last[-1].verdict) == ("n/a", "n/a")


# -- table, results.json, plot -----------------------------------------------------------------------


def test_events_per_s_shows_the_share_timed_when_workers_began_before_the_last_was_ready() -> None:
    r = result(2)
    assert (r.timed_share, rate_cell(r)) == (None, "10,000")
    r.head_start = 0
    assert (r.timed_share, rate_cell(r)) == (1.0, "10,000")
    r.head_start = 30_000
    assert (r.timed_share, rate_cell(r)) == (0.25, "10,000 (25 %)")
    r.head_start, r.events_per_s = 40_000, None
    assert (r.timed_share, rate_cell(r)) == (0.0, "n/a (0 %)")
    assert (workers(1), workers(4)) == ("1 worker", "4 workers")


def test_table_cells_of_one_worker_and_of_a_cluster_with_a_hand_over() -> None:
    one, two = result(1), result(2)
    two.handover = Handover(2, owned_s=11.0, first_exact_s=11.5, all_exact_s=12.25)
    compared = compare([one, two])
    assert owned_cell(two.owned) == "4+4"
    assert owned_cell([]) == "n/a"
    cells = row_cells(one, compared[0])
    assert cells[0:5] == ["1", "8", "10,000", "80.0", "—"]
    assert cells[7:] == ["—", "—", "yes", "n/a"]
    two.answer_ms = 1234.4
    cells = row_cells(two, compared[1])
    assert cells[4] == "1.00 x"
    assert cells[5] == "51,200 / 51,200"  # 50 MiB over 1,024 customers
    assert cells[6] == "0.50 x / ≤ 0.60 x"
    assert cells[7:] == ["11.00 s", "11.50 s / 12.25 s", "yes", "1,234"]
    two.status, two.exact = "failed", False
    cells = row_cells(two, compare([one, two])[1])
    assert "failed" in cells[0]
    assert "no" in cells[-2]
    assert scaling_table([one, two], 8).row_count == 2


def test_results_json_keeps_every_figure_and_reads_back(tmp_path: Path) -> None:
    one, two = result(1), result(2)
    two.handover = Handover(2, owned_s=11.0)
    targets = scaling_targets([one, two])
    path = tmp_path / "workers.json"
    write_scaling(path, {"tag": "bench-x"}, [one, two], targets)
    data = json.loads(path.read_text())
    assert data["mode"] == "workers"
    assert [row["workers"] for row in data["workers"]] == [1, 2]
    assert data["workers"][1]["memory_ratio"] == pytest.approx(0.5)
    assert data["workers"][1]["growth_max"] == pytest.approx(51_200)
    back = ScaleResult.from_dict(data["workers"][1])
    assert back.handover == Handover(2, owned_s=11.0)
    assert back.growth_per_customer == two.growth_per_customer


def test_plot_series_goals_and_drawing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows: list[dict[str, Any]] = [{"workers": 1, "cpu_us_per_event": 80.0, "growth_max": 1000.0},
            {"workers": 2, "cpu_us_per_event": None, "growth_max": 500.0}]  # fmt: skip
    assert series(rows, "cpu_us_per_event", 2.0) == [160.0, None]
    assert goals(rows, "cpu_us_per_event", 1.2, per_worker=False) == [None, pytest.approx(96.0)]
    assert goals(rows, "growth_max", 1.2, per_worker=True) == [None, pytest.approx(600.0)]
    assert goals(rows[1:], "growth_max", 1.2, per_worker=True) == [None]
    one, two = result(1), result(2)
    two.handover = Handover(2, owned_s=11.0, first_exact_s=11.5, all_exact_s=12.0)
    path = tmp_path / "workers.json"
    write_scaling(path, {"args": {"partitions": 8}}, [one, two], scaling_targets([one, two]))
    draw(json.loads(path.read_text()), tmp_path / "direct.png")
    assert (tmp_path / "direct.png").stat().st_size > 10_000
    # bench.plot recognises a workers run and draws it the same way.
    monkeypatch.setattr(sys, "argv", ["bench.plot", "--input", str(path), "--output", str(tmp_path / "via.png")])
    plot.main()
    assert (tmp_path / "via.png").stat().st_size > 10_000
