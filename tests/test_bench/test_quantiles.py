"""The bench's pure parts: PromQL-like histogram quantiles, exact quantiles, medians and targets."""

from __future__ import annotations

import math
import random

import pytest

from bench.monitor import stage_note, thread_note
from bench.stats import (
    Result,
    bucket_delta,
    bytes_per_customer,
    check_targets,
    crossing_time,
    histogram_quantile,
    median,
    nearest_rank,
    parse_histogram,
    parse_histograms_by,
    processed_messages,
    summarize,
)

INF = math.inf
# 5 ms … 60 s, like the worker's retention_event_visible_seconds.
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, INF)


def cumulative(samples: list[float], bounds: tuple[float, ...] = BOUNDS) -> list[tuple[float, float]]:
    return [(b, float(sum(1 for s in samples if s <= b))) for b in bounds]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.01),  # rank 10 ends exactly at the top of the (0.005, 0.01] bucket
        (0.75, 0.0375),  # rank 15: half-way through the (0.025, 0.05] bucket
        (0.25, 0.0075),  # rank 5: half-way through the (0.005, 0.01] bucket
        (1.0, 0.05),
    ],
)
def test_interpolates_linearly_inside_the_bucket_like_promql(q: float, expected: float) -> None:
    buckets = [(0.005, 0.0), (0.01, 10.0), (0.025, 10.0), (0.05, 20.0), (INF, 20.0)]
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_first_bucket_starts_at_zero_and_inf_bucket_answers_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.5, [(1.0, 10.0), (INF, 10.0)]) == pytest.approx(0.5)
    assert histogram_quantile(0.5, [(1.0, 1.0), (2.0, 1.0), (INF, 10.0)]) == 2.0
    assert histogram_quantile(0.5, [(-1.0, 4.0), (INF, 4.0)]) == -1.0


def test_nothing_observed_or_no_inf_bucket_is_not_a_number() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(1.0, 0.0), (INF, 0.0)]) is None
    assert histogram_quantile(0.5, [(1.0, 3.0), (2.0, 4.0)]) is None
    assert histogram_quantile(-0.1, [(1.0, 3.0), (INF, 3.0)]) == -INF
    assert histogram_quantile(1.1, [(1.0, 3.0), (INF, 3.0)]) == INF
    assert math.isnan(histogram_quantile(math.nan, [(1.0, 3.0), (INF, 3.0)]) or 0.0)


def test_unsorted_split_and_non_monotonic_buckets_are_repaired() -> None:
    # Two series of one histogram (different labels) and a scrape where a higher bucket lagged.
    buckets = [(INF, 6.0), (1.0, 2.0), (2.0, 1.0), (INF, 4.0), (1.0, 3.0), (2.0, 3.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)  # rank 5 = the 5 at ≤ 1 s


def test_estimate_lands_in_the_bucket_of_the_exact_quantile() -> None:
    rng = random.Random(3)
    samples = [rng.lognormvariate(math.log(0.08), 1.0) for _ in range(20_000)]
    for q in (0.5, 0.9, 0.99):
        exact = nearest_rank(samples, q)
        assert exact is not None
        estimate = histogram_quantile(q, cumulative(samples))
        assert estimate is not None
        upper = next(b for b in BOUNDS if exact <= b)
        lower = max([0.0, *(b for b in BOUNDS if b < upper)])
        assert lower <= estimate <= upper


def test_delta_between_scrapes_and_a_restarted_worker() -> None:
    before = [(0.01, 5.0), (0.1, 8.0), (INF, 10.0)]
    after = [(0.01, 6.0), (0.1, 12.0), (INF, 15.0)]
    assert bucket_delta(before, after) == [(0.01, 1.0), (0.1, 4.0), (INF, 5.0)]
    assert bucket_delta(after, [(0.01, 1.0), (0.1, 2.0), (INF, 2.0)]) == [(0.01, 1.0), (0.1, 2.0), (INF, 2.0)]
    assert bucket_delta([], after) == after


METRICS = """\
# HELP retention_event_visible_seconds Kafka timestamp to KPI facts visible.
# TYPE retention_event_visible_seconds histogram
retention_event_visible_seconds_bucket{partition="0",le="0.005"} 1.0
retention_event_visible_seconds_bucket{partition="0",le="0.05"} 3.0
retention_event_visible_seconds_bucket{partition="0",le="+Inf"} 4.0
retention_event_visible_seconds_count{partition="0"} 4.0
retention_event_visible_seconds_sum{partition="0"} 1.5
retention_event_visible_seconds_bucket{partition="1",le="0.005"} 0.0
retention_event_visible_seconds_bucket{partition="1",le="0.05"} 2.0
retention_event_visible_seconds_bucket{partition="1",le="+Inf"} 2.0
retention_event_visible_seconds_count{partition="1"} 2.0
retention_event_visible_seconds_sum{partition="1"} 0.04
# HELP retention_events_total Valid events processed.
# TYPE retention_events_total counter
retention_events_total{type="order.placed"} 7.0
retention_events_total{type="customer.signed_up"} 3.0
# HELP retention_events_rejected_total Messages dead-lettered.
# TYPE retention_events_rejected_total counter
retention_events_rejected_total{reason="not_json"} 2.0
# HELP retention_events_duplicate_total Duplicates.
# TYPE retention_events_duplicate_total counter
retention_events_duplicate_total 5.0
"""


def test_histogram_parsed_from_metrics_and_summed_over_labels() -> None:
    assert parse_histogram(METRICS, "retention_event_visible_seconds") == [(0.005, 1.0), (0.05, 5.0), (INF, 6.0)]
    assert parse_histogram(METRICS, "retention_event_lag_seconds") is None


def test_processed_is_events_plus_rejected() -> None:
    assert processed_messages(METRICS) == 12
    assert processed_messages("") == 0


def test_nearest_rank_quantiles() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert nearest_rank(values, 0.5) == 50.0
    assert nearest_rank(values, 0.99) == 99.0
    assert nearest_rank(values, 1.0) == 100.0
    assert nearest_rank(values, 0.0) == 1.0
    assert nearest_rank([0.2], 0.99) == 0.2
    assert nearest_rank([], 0.5) is None


def test_crossing_time_interpolates_between_polls() -> None:
    assert crossing_time(10.0, 0, 11.0, 1000, 250) == pytest.approx(10.25)
    assert crossing_time(10.0, 900, 11.0, 1000, 800) == 10.0  # already past at the earlier poll
    assert crossing_time(10.0, 500, 11.0, 500, 500) == 11.0  # no movement: the later poll


def test_median_ignores_what_was_not_measured() -> None:
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([4, 1]) == 2.5
    assert median([None, math.nan]) is None


def test_summary_takes_medians_the_worst_status_and_every_note() -> None:
    runs = [
        Result("monitor", events_per_s=100.0, latency_p99_s=0.5, recovery_s=None, notes=["a"]),
        Result("monitor", events_per_s=300.0, latency_p99_s=None, recovery_s=12.0, status="timeout", notes=["b"]),
        Result("monitor", events_per_s=200.0, latency_p99_s=0.7, recovery_s=None, notes=["a"]),
    ]
    summary = summarize(runs)
    assert summary.events_per_s == 200.0
    assert summary.latency_p99_s == pytest.approx(0.6)
    assert summary.recovery_s == 12.0
    assert summary.bytes_per_customer is None
    assert summary.status == "timeout"
    assert summary.notes == ["a", "b"]
    with pytest.raises(ValueError, match="no runs"):
        summarize([])


def test_bytes_per_customer() -> None:
    assert bytes_per_customer(300 * 2**20, 100 * 2**20, 200_000) == pytest.approx(1048.576)
    assert bytes_per_customer(None, 1, 10) is None
    assert bytes_per_customer(10, 1, 0) is None


def test_targets_judged_on_ratios_of_the_same_run() -> None:
    summary = {
        "ceiling": Result("ceiling", events_per_s=300_000.0),
        "quix": Result("quix", events_per_s=20_000.0),
        "bytewax": Result("bytewax", events_per_s=18_000.0),
        "pathway": Result("pathway", events_per_s=100_000.0),
        "monitor": Result(
            "monitor", events_per_s=160_000.0, latency_p99_s=1.2, bytes_per_customer=900.0, recovery_s=40.0
        ),
    }
    targets = check_targets(summary, 5000.0, 1_000_000)
    verdicts = {t.name: t.verdict for t in targets}
    assert verdicts == {
        "monitor vs ceiling": "pass",
        "monitor vs Quix peer": "pass",
        "monitor vs Bytewax peer": "pass",
        "monitor vs Pathway peer": "pass",  # 1.6 x
        "monitor p99 latency": "fail",
        "memory per tracked customer": "pass",
        "restart recovery": "pass",
    }
    assert {t.name: t.value for t in targets}["monitor vs Bytewax peer"] == "8.89 x"
    assert all(t.goal == "≥ 1.5 x the peer's events/s" for t in targets if t.name.endswith(" peer"))
    summary["monitor"].events_per_s = 29_000.0
    verdicts = {t.name: t.verdict for t in check_targets(summary, 5000.0, 1_000_000)}
    assert verdicts["monitor vs ceiling"] == verdicts["monitor vs Quix peer"] == "fail"
    assert verdicts["monitor vs Pathway peer"] == "fail"
    assert verdicts["monitor vs Bytewax peer"] == "pass"  # 1.61 x


def test_missing_systems_and_other_scales_are_reported_not_judged() -> None:
    targets = {t.name: t for t in check_targets({"monitor": Result("monitor", recovery_s=3.0)}, 500.0, 5000)}
    assert targets["monitor vs ceiling"].verdict == "n/a"
    assert targets["monitor vs Bytewax peer"].verdict == targets["monitor vs Pathway peer"].verdict == "n/a"
    assert targets["monitor p99 latency"].verdict == "n/a"
    assert "5,000/s" in targets["monitor p99 latency"].note
    assert targets["restart recovery"].verdict == "pass"
    assert "5,000 customers" in targets["restart recovery"].note


def test_histograms_parsed_by_one_label() -> None:
    assert parse_histograms_by(METRICS, "retention_event_visible_seconds", "partition") == {
        "0": [(0.005, 1.0), (0.05, 3.0), (INF, 4.0)], "1": [(0.005, 0.0), (0.05, 2.0), (INF, 2.0)]}
    assert parse_histograms_by(METRICS, "retention_event_lag_seconds", "partition") == {}


def test_the_stage_note_gives_each_stages_p99_over_the_slice_only() -> None:
    before = {"apply": [(0.1, 100.0), (1.0, 100.0), (INF, 100.0)]}  # the backlog's: all fast
    after = {"apply": [(0.1, 100.0), (1.0, 200.0), (INF, 200.0)], "follow": [(0.1, 0.0), (1.0, 0.0), (INF, 0.0)]}
    assert stage_note(before, after) == "monitor: paced p99 by stage: apply 991 ms, follow n/a"
    assert stage_note({}, {}) == "monitor: paced p99 by stage: n/a"


def test_the_thread_note_gives_each_threads_cores_over_the_backlog_busiest_first() -> None:
    before = {"main": 10.0, "rocksdb:low": 1.0, "gone": 5.0}
    after = {"main": 14.5, "rocksdb:low": 1.02, "retention-apply": 6.5}  # the apply thread started meanwhile
    assert thread_note(before, after, 10.0) == "monitor: backlog cores by thread: retention-apply 0.65, main 0.45"
    assert thread_note({}, {}, 10.0) == "monitor: backlog cores by thread: n/a"
