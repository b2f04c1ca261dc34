"""The steady-population soak's pure parts: the frozen population, its history, the flat-RSS verdict,
the per-minute column and band, and the option."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures import usage_error
from rich.console import Console
from test_soak import LIMITS, run

from bench.soak import parse_args
from bench.soak_plot import draw
from bench.soak_report import minute_table, payload
from bench.soak_stats import MinuteRow, Sample, judge, minute_rows
from bench.soak_steady import (
    FACT_BYTES,
    HISTORY_FACTOR,
    MAX_HISTORY_US,
    SteadyPopulation,
    beyond_facts,
    rss_band,
    rss_deviations,
)
from core.settings import Settings
from streams.producers.simulate import Simulator

END_US = 1_767_225_600_000_000  # 2026-01-01


def steady(customers: int = 150) -> SteadyPopulation:
    settings = Settings()
    return SteadyPopulation(settings.facts, settings.topics, seed=3, scenario="steady", customers=customers)


def times(messages: list[tuple[str, bytes, bytes]]) -> list[str]:
    return [json.loads(value)["time"] for _, _, value in messages]


def test_the_history_fills_the_population_before_the_load_then_freezes_it() -> None:
    sim = steady()
    history = list(sim.history(END_US, rate=1000.0))
    assert len(sim.active) >= sim.target
    assert sim.frozen
    assert len(history) < HISTORY_FACTOR * sim.target
    stamps = times(history)
    assert stamps == sorted(stamps)
    assert stamps[-1] < "2026-01-01T00:00:00.000Z"  # all of it before the load
    population, reps = sim.population, len(sim.reps)
    later = [sim.emit(END_US + i * 1000) for i in range(6000)]
    types = {json.loads(value)["type"] for _, _, value in later}
    assert "customer.signed_up" not in types
    assert {"customer.churned", "customer.reactivated", "order.placed"} <= types
    assert (sim.population, len(sim.reps)) == (population, reps)  # nobody new: the same customers and reps
    assert 0.75 * sim.target <= len(sim.active) <= 1.25 * sim.target  # as many come back as churn


def test_a_slow_rate_still_keeps_the_history_within_days_of_the_load() -> None:
    sim = steady(customers=20)
    first = json.loads(next(iter(sim.history(END_US, rate=0.0001)))[2])["time"]
    assert first >= "2025-12-29T00:00:00.000Z"  # END_US - 3 days
    assert MAX_HISTORY_US == 3 * 86_400 * 1_000_000


def test_before_freezing_it_is_the_simulator() -> None:
    settings = Settings()
    plain = Simulator(settings.facts, settings.topics, seed=3, scenario="steady", customers=150)
    sim = steady()
    assert [sim.emit(END_US + i) for i in range(500)] == [plain.emit(END_US + i) for i in range(500)]


def rows_with_rss(rss_mib: list[float]) -> list[MinuteRow]:
    """Minute rows of a 12-minute run whose RSS at minute m's end is ``rss_mib[m - 1]``."""
    return minute_rows(run(rss_mib=lambda t: rss_mib[min(len(rss_mib) - 1, max(0, int((t - 1e-9) // 60)))]),
                       LIMITS.warmup_s)  # fmt: skip


def test_rss_deviations_are_against_the_first_minute_after_the_warm_up() -> None:
    rows = rows_with_rss([50.0, 100.0, 104.0, 97.0, *[100.0] * 8])
    deviations = rss_deviations(rows)
    assert deviations[0] is None  # the warm-up minute
    assert deviations[1:4] == pytest.approx([0.0, 4.0, -3.0])
    assert rss_deviations([]) == []


def test_rss_band_passes_within_the_limit_and_fails_outside_it() -> None:
    flat = rss_band(rows_with_rss([50.0, 100.0, 104.0, 97.0, *[100.0] * 8]), 5.0)
    assert flat.verdict == "pass"
    assert flat.measured == "minutes 2 to 12 against minute 2 (100 MiB): -3.0 % … +4.0 %"
    assert "±5 %" in flat.rule
    assert rss_band(rows_with_rss([50.0, 100.0, *[100.0] * 9, 106.0]), 5.0).verdict == "fail"
    assert rss_band(rows_with_rss([50.0, 100.0, *[94.0] * 10]), 5.0).verdict == "fail"  # a drop counts too
    assert rss_band(rows_with_rss([50.0] * 12)[:2], 5.0).verdict == "n/a"


def test_the_minute_table_shows_each_minute_against_the_first_measured_one() -> None:
    rows = rows_with_rss([50.0, 100.0, 110.0, *[100.0] * 9])
    console = Console(record=True, width=400)
    console.print(minute_table(rows, 1000.0))
    text = console.export_text()
    assert "RSS vs 1st measured" in text
    assert "+10.0 %" in text
    assert "+0.0 %" in text


def test_the_soak_plot_draws_the_band(tmp_path: Path) -> None:
    samples = run(rss_mib=lambda t: 200 + t / 600)
    rows = minute_rows(samples, LIMITS.warmup_s)
    verdict = judge(samples, LIMITS, achieved_rate=1000.0)
    meta = {"args": {"warmup_minutes": 1.0, "rate": 1000.0, "minutes": 12.0, "customers": 1000, "partitions": 4},
            "machine": {}}  # fmt: skip
    draw(payload(meta, samples, rows, verdict, LIMITS), tmp_path / "soak.png")
    assert (tmp_path / "soak.png").stat().st_size > 10_000


def test_population_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args([]).population == "growing"
    assert parse_args(["--population", "steady"]).population == "steady"
    assert "--population: invalid choice: 'flat'" in usage_error(parse_args, ["--population", "flat"], capsys)


def with_facts(samples: list[Sample], facts: Callable[[float], int]) -> list[Sample]:
    for s in samples:
        s.scrape.facts = facts(s.t)
    return samples


def test_memory_that_the_retained_facts_explain_is_flat_beyond_them() -> None:
    # 1,000 facts a second at FACT_BYTES each: RSS grows, what the facts do not explain does not.
    samples = with_facts(run(rss_mib=lambda t: 300 + 1000 * t * FACT_BYTES / 2**20), lambda t: round(1000 * t))
    check = beyond_facts(samples, LIMITS.warmup_s, 5.0)
    assert check.verdict == "pass"
    assert "columns took" in check.measured


def test_memory_growing_beyond_the_retained_facts_fails() -> None:
    samples = with_facts(run(rss_mib=lambda t: 300 + 0.2 * t), lambda t: 1000)  # 144 MiB in 12 min, facts still
    assert beyond_facts(samples, LIMITS.warmup_s, 5.0).verdict == "fail"


def test_without_the_facts_series_there_is_no_verdict_beyond_them() -> None:
    assert beyond_facts(run(), LIMITS.warmup_s, 5.0).verdict == "n/a"


def test_the_store_columns_bytes_are_subtracted_when_the_worker_exports_them() -> None:
    # RSS grows by 60 B a fact: 27 B per fact does not explain it, the exported column bytes do.
    samples = with_facts(run(rss_mib=lambda t: 300 + 1000 * t * 60 / 2**20), lambda t: round(1000 * t))
    assert beyond_facts(samples, LIMITS.warmup_s, 5.0).verdict == "fail"
    for s in samples:
        s.scrape.fact_bytes = 60 * (s.scrape.facts or 0)
    check = beyond_facts(samples, LIMITS.warmup_s, 5.0)
    assert check.verdict == "pass"
    assert check.rule.startswith("RSS minus the store columns")
