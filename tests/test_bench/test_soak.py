"""The soak run's pure parts: line fits, the flat verdict, per-minute rows, /metrics and /proc parsing, CLI."""

from __future__ import annotations

import math
import random

import pytest
from fixtures import usage_error

from bench.soak import parse_args
from bench.soak_report import slowest_stage
from bench.soak_stats import (
    FAUST_COMMIT_S,
    TREND_SHARE,
    Limits,
    Sample,
    Scrape,
    busy_seconds,
    fit_line,
    interval,
    judge,
    lag_seconds,
    minute_rows,
    parse_scrape,
    trend,
)

INF = math.inf
MIB = 2**20
RATE = 1000.0
LIMITS = Limits(rate=RATE, warmup_s=60.0, max_rss_growth=5.0, max_lag_s=2.0)


def sample(t: float, *, rss_mib: float = 200.0, route: int = 100, apply: int = 50, packs_per_s: float = 100.0,
           customers: int = 1000, visible: list[tuple[float, float]] | None = None, cpu: float | None = None,
           processed: int | None = None) -> Sample:  # fmt: skip
    scrape = Scrape(processed=round(RATE * t) if processed is None else processed, route_lag=route, apply_lag=apply,
                    rekeyed_end=round(packs_per_s * t), customers=customers, visible=visible or [])  # fmt: skip
    return Sample(t=t, rss_bytes=round(rss_mib * MIB), worker_cpu_s=0.5 * t if cpu is None else cpu,
                  bench_cpu_s=0.1 * t, machine_busy_s=0.8 * t, sent=round(RATE * t), behind=0, load1=0.5,
                  scrape_s=0.01, scrape=scrape)  # fmt: skip


def run(minutes: int = 12, step: float = 5.0, **series: object) -> list[Sample]:
    """Samples every ``step`` s; each keyword is a function of t giving that field of :func:`sample`."""
    return [sample(t, **{k: f(t) for k, f in series.items()})  # type: ignore[operator]
            for t in [i * step for i in range(int(minutes * 60 / step) + 1)]]  # fmt: skip


def checks(samples: list[Sample], achieved: float | None = RATE) -> dict[str, str]:
    return {c.name: c.verdict for c in judge(samples, LIMITS, achieved_rate=achieved).checks}


# -- line fits ---------------------------------------------------------------------------------------


def test_fit_line_recovers_an_exact_line_and_a_noisy_one() -> None:
    line = fit_line([(x, 3.0 + 0.5 * x) for x in range(10)])
    assert line is not None
    assert line.slope == pytest.approx(0.5)
    assert line.intercept == pytest.approx(3.0)
    assert line.at(20) == pytest.approx(13.0)
    rng = random.Random(1)
    noisy = fit_line([(x, 10.0 - 2.0 * x + rng.gauss(0, 1)) for x in range(1000)])
    assert noisy is not None
    assert noisy.slope == pytest.approx(-2.0, abs=0.01)


def test_fit_line_needs_two_distinct_x() -> None:
    assert fit_line([]) is None
    assert fit_line([(1.0, 2.0)]) is None
    assert fit_line([(1.0, 2.0), (1.0, 3.0)]) is None


def test_trend_reports_slope_per_10_minutes_and_the_fitted_rise() -> None:
    got = trend([(60.0, 100.0), (360.0, 130.0), (660.0, 160.0)])
    assert got is not None
    assert got.per_10min == pytest.approx(60.0)
    assert got.rise == pytest.approx(60.0)
    assert (got.first, got.last, got.max) == (100.0, 160.0, 160.0)
    assert got.start_fit == pytest.approx(100.0)


# -- the verdict -----------------------------------------------------------------------------------------


def test_flat_memory_and_lag_pass() -> None:
    rng = random.Random(2)
    samples = run(rss_mib=lambda t: 300 + rng.uniform(-3, 3), route=lambda t: rng.randint(0, 800))
    assert set(checks(samples).values()) == {"pass"}
    assert list(checks(samples)) == ["memory (RSS)", "route lag", "apply lag", "producer rate"]
    assert judge(samples, LIMITS, achieved_rate=RATE).passed


def test_memory_growing_beyond_the_limit_fails_and_the_warm_up_is_left_out() -> None:
    # +10 % over the 10 measured minutes: fails; a steep climb during the warm-up alone does not count.
    assert checks(run(rss_mib=lambda t: 300 + 30 * max(0.0, t - 60) / 600))["memory (RSS)"] == "fail"
    assert checks(run(rss_mib=lambda t: 300 + 3 * max(0.0, t - 60) / 600))["memory (RSS)"] == "pass"
    assert checks(run(rss_mib=lambda t: 100 + 200 * min(t, 60) / 60))["memory (RSS)"] == "pass"


def test_memory_verdict_reports_start_end_and_slope() -> None:
    verdict = judge(run(rss_mib=lambda t: 300 + 60 * t / 600), LIMITS, achieved_rate=RATE)
    memory = verdict.checks[0]
    assert memory.verdict == "fail"
    assert "306 → 372 MiB" in memory.measured
    assert "+60.0 MiB/10 min" in memory.measured
    assert verdict.rss is not None
    assert verdict.rss.per_10min / MIB == pytest.approx(60.0)


def test_lag_above_the_bound_fails_even_when_flat() -> None:
    bound = LIMITS.max_lag_s * RATE  # in events: 2 s of traffic
    assert checks(run(route=lambda t: int(bound) + 1))["route lag"] == "fail"
    assert checks(run(route=lambda t: int(bound)))["route lag"] == "pass"


def test_lag_trending_upward_fails_below_the_bound() -> None:
    bound = LIMITS.max_lag_s * RATE
    rising = run(route=lambda t: int(TREND_SHARE * bound * 1.5 * t / 720))  # ends below the bound
    assert max(s.scrape.route_lag or 0 for s in rising) < bound
    assert checks(rising)["route lag"] == "fail"
    falling = run(route=lambda t: int(bound * (1 - t / 720)))
    assert checks(falling)["route lag"] == "pass"


def test_apply_lag_bound_is_in_packs_and_allows_faust_commit_interval() -> None:
    # 100 packs/s: the bound is (2 s + the commit interval) of packs; a saw-tooth under it is flat.
    bound = (LIMITS.max_lag_s + FAUST_COMMIT_S) * 100.0
    saw = run(apply=lambda t: int(bound * 0.95 * (t % 15) / 15))
    assert checks(saw)["apply lag"] == "pass"
    assert checks(run(apply=lambda t: int(bound) + 5))["apply lag"] == "fail"
    verdict = judge(saw, LIMITS, achieved_rate=RATE)
    assert verdict.pack_rate == pytest.approx(100.0, rel=0.01)
    assert verdict.apply_lag_max == max(s.scrape.apply_lag or 0 for s in saw if s.t >= 60)


def test_apply_lag_in_seconds_follows_the_pack_rate() -> None:
    # The same 300 packs behind are 3 s at 100 packs/s, but 6 s once a busy worker packs twice as much.
    calm = lag_seconds(run(apply=lambda t: 300), RATE)
    assert calm[-1][2] == pytest.approx(3.0, rel=0.01)
    busy = lag_seconds(run(apply=lambda t: 300, packs_per_s=lambda t: 50.0), RATE)
    assert busy[-1][2] == pytest.approx(6.0, rel=0.01)
    assert checks(run(apply=lambda t: 300, packs_per_s=lambda t: 50.0))["apply lag"] == "fail"
    assert calm[0][2] is None  # no pack rate yet at the first sample
    assert calm[-1][1] == pytest.approx(0.1)  # route: 100 events at the offered 1,000/s


def test_producer_short_of_the_rate_fails_the_run() -> None:
    samples = run()
    assert checks(samples, achieved=0.98 * RATE)["producer rate"] == "fail"
    assert checks(samples, achieved=None)["producer rate"] == "n/a"
    assert not judge(samples, LIMITS, achieved_rate=0.98 * RATE).passed


def test_too_few_samples_is_not_a_verdict() -> None:
    verdict = judge([sample(0.0), sample(30.0)], LIMITS, achieved_rate=RATE)
    assert [c.verdict for c in verdict.checks[:3]] == ["n/a", "n/a", "n/a"]
    assert not verdict.passed


def test_failed_scrapes_are_left_out_of_the_lag_fits() -> None:
    samples = run()
    for s in samples[30:40]:
        s.scrape_s, s.scrape = None, Scrape()  # a scrape that timed out carries no lag, not a lag of 0
    verdict = judge(samples, LIMITS, achieved_rate=RATE)
    assert verdict.route_lag is not None
    assert verdict.route_lag.first == pytest.approx(0.1)  # 100 events at 1,000/s
    assert verdict.route_lag.max == pytest.approx(0.1)


def test_memory_per_new_customer_is_rss_slope_over_customer_slope() -> None:
    samples = run(rss_mib=lambda t: 300 + t / 60, customers=lambda t: 1000 + int(10 * t))
    verdict = judge(samples, LIMITS, achieved_rate=RATE)
    assert verdict.bytes_per_new_customer == pytest.approx(MIB / 600, rel=1e-3)


# -- intervals and rows ------------------------------------------------------------------------------------


def cumulative(samples: list[float]) -> list[tuple[float, float]]:
    bounds = (0.01, 0.05, 0.1, 0.5, 1.0, INF)
    return [(b, float(sum(1 for s in samples if s <= b))) for b in bounds]


def test_interval_rates_cpu_and_latency_from_deltas() -> None:
    a = sample(10.0, visible=cumulative([0.005] * 100))
    b = sample(20.0, visible=cumulative([0.005] * 100 + [0.3] * 100))
    got = interval(a, b)
    assert got.events_per_s == pytest.approx(RATE)
    assert got.worker_cores == pytest.approx(0.5)
    assert got.bench_cores == pytest.approx(0.1)
    assert got.rest_cores == pytest.approx(0.2)
    assert got.latency_samples == 100
    assert 0.1 < (got.p50_s or 0) < 0.5  # only the new observations, not the 100 fast ones before
    assert got.p99_s is not None
    assert got.p99_s <= 0.5


def test_interval_names_the_slowest_stage_of_its_own_observations() -> None:
    a, b = sample(10.0), sample(20.0)
    a.scrape.stages = {"queue": cumulative([2.0] * 100), "follow": cumulative([0.005] * 100)}
    b.scrape.stages = {"queue": cumulative([2.0] * 100 + [0.005] * 100),
                       "follow": cumulative([0.005] * 100 + [0.3] * 100),
                       "route_apply": cumulative([5.0] * 100)}  # fmt: skip
    got = interval(a, b)
    assert set(got.stage_p99_s) == {"queue", "follow", "route_apply"}
    assert (got.stage_p99_s["queue"] or 1) < 0.1  # the slow queue observations came before a
    assert slowest_stage(got).startswith("follow ")  # route_apply (route + queue + apply) is not a stage of its own
    assert slowest_stage(interval(sample(0.0), sample(5.0))) == "-"


def test_interval_bounds_the_longest_loop_stall_of_its_own_observations() -> None:
    a, b = sample(10.0), sample(20.0)
    a.scrape.loop_stalls = cumulative([0.8] + [0.001] * 50)
    b.scrape.loop_stalls = cumulative([0.8] + [0.001] * 50 + [0.07] + [0.001] * 50)
    assert interval(a, b).loop_stall_max_s == 0.1  # the bucket of the new 70 ms stall, not the older 800 ms
    assert interval(sample(0.0), sample(5.0)).loop_stall_max_s is None


def test_interval_without_a_scrape_has_no_rate() -> None:
    a, b = sample(0.0), sample(5.0)
    b.scrape_s = None
    assert interval(a, b).events_per_s is None
    assert interval(b, b).seconds == 0.0


def test_minute_rows_cover_each_minute_and_fold_the_final_look_into_the_last() -> None:
    samples = run(minutes=3, rss_mib=lambda t: 100 + t, route=int)
    samples.append(sample(180.4, rss_mib=999, route=7))  # the look just after the last send
    rows = minute_rows(samples, warmup_s=60.0)
    assert [r.minute for r in rows] == [1, 2, 3]
    assert [r.warmup for r in rows] == [True, False, False]
    assert rows[0].rss_bytes == round(160 * MIB)
    assert rows[1].route_lag_max == 120
    assert rows[2].rss_bytes == round(999 * MIB)
    assert rows[1].span.events_per_s == pytest.approx(RATE)


def test_minute_rows_need_two_samples() -> None:
    assert minute_rows([sample(0.0)], 60.0) == []


# -- parsing ---------------------------------------------------------------------------------------------------

METRICS = """\
# TYPE retention_events_total counter
retention_events_total{type="order.placed"} 700.0
retention_events_total{type="customer.signed_up"} 300.0
# TYPE retention_events_rejected_total counter
retention_events_rejected_total{reason="not_json"} 5.0
# TYPE retention_consumer_lag_records gauge
retention_consumer_lag_records{partition="0",stage="route",topic="t.lifecycle"} 10.0
retention_consumer_lag_records{partition="1",stage="route",topic="t.support"} 5.0
retention_consumer_lag_records{partition="0",stage="other",topic="x"} 1000.0
# TYPE retention_faust_topic_partition_end_offset gauge
retention_faust_topic_partition_end_offset{partition="0",topic="t-events-by-customer"} 100.0
retention_faust_topic_partition_end_offset{partition="1",topic="t-events-by-customer"} 50.0
# TYPE retention_faust_topic_partition_offset_commited gauge
retention_faust_topic_partition_offset_commited{partition="0",topic="t-events-by-customer"} 90.0
# TYPE retention_event_visible_seconds histogram
retention_event_visible_seconds_bucket{le="0.1"} 3.0
retention_event_visible_seconds_bucket{le="1.0"} 4.0
retention_event_visible_seconds_bucket{le="+Inf"} 4.0
retention_event_visible_seconds_count 4.0
retention_event_visible_seconds_sum 1.2
# TYPE retention_stage_seconds histogram
retention_stage_seconds_bucket{le="0.1",stage="queue"} 8.0
retention_stage_seconds_bucket{le="1.0",stage="queue"} 9.0
retention_stage_seconds_bucket{le="+Inf",stage="queue"} 10.0
retention_stage_seconds_count{stage="queue"} 10.0
retention_stage_seconds_sum{stage="queue"} 4.0
retention_stage_seconds_bucket{le="0.1",stage="follow"} 2.0
retention_stage_seconds_bucket{le="1.0",stage="follow"} 2.0
retention_stage_seconds_bucket{le="+Inf",stage="follow"} 2.0
retention_stage_seconds_count{stage="follow"} 2.0
retention_stage_seconds_sum{stage="follow"} 0.1
# TYPE retention_event_loop_stall_seconds histogram
retention_event_loop_stall_seconds_bucket{le="0.01"} 50.0
retention_event_loop_stall_seconds_bucket{le="0.5"} 59.0
retention_event_loop_stall_seconds_bucket{le="+Inf"} 60.0
retention_event_loop_stall_seconds_count 60.0
retention_event_loop_stall_seconds_sum 2.0
# TYPE retention_abc_customers gauge
retention_abc_customers{class="A"} 10.0
retention_abc_customers{class="B"} 20.0
retention_abc_customers{class="C"} 70.0
# TYPE retention_customers_active gauge
retention_customers_active{segment="plan:pro"} 9.0
retention_customers_active{segment="all"} 95.0
# TYPE retention_kpi_gauges_timestamp_seconds gauge
retention_kpi_gauges_timestamp_seconds 1.7e9
"""


def test_parse_scrape_reads_every_number_the_soak_needs() -> None:
    got = parse_scrape(METRICS)
    assert got.processed == 1005
    assert got.route_lag == 15  # the route stage only
    assert got.rekeyed_end == 150
    assert got.apply_lag == 10 + 50  # partition 1 has not committed yet: all of it is lag
    assert got.visible == [(0.1, 3.0), (1.0, 4.0), (INF, 4.0)]
    assert got.customers == 100
    assert got.active == 95
    assert got.gauges_at == 1.7e9
    assert got.stages == {"queue": [(0.1, 8.0), (1.0, 9.0), (INF, 10.0)],
                          "follow": [(0.1, 2.0), (1.0, 2.0), (INF, 2.0)]}
    assert got.loop_stalls == [(0.01, 50.0), (0.5, 59.0), (INF, 60.0)]


def test_parse_scrape_of_a_worker_without_those_series() -> None:
    got = parse_scrape("# TYPE retention_events_total counter\n")
    assert (got.processed, got.route_lag, got.apply_lag, got.customers, got.visible) == (0, None, None, None, [])


def test_busy_seconds_leave_out_idle_and_iowait() -> None:
    stat = "cpu  100 20 30 1000 50 1 2 3 40 0\ncpu0 50 10 15 500 25 0 1 1 20 0\n"
    assert busy_seconds(stat) == pytest.approx((100 + 20 + 30 + 1 + 2 + 3) / 100)
    assert busy_seconds(stat, ticks_per_s=1000) == pytest.approx(0.156)
    assert busy_seconds("intr 1 2 3\n") is None


# -- the command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--minutes", "0"], "--minutes: '0' is not between 0.5 and 1440"),
        (["--rate", "fast"], "--rate: 'fast' is not a number"),
        (["--customers", "0"], "--customers: 0 is not between 1 and 1,000,000"),
        (["--sample-interval", "0.1"], "--sample-interval: '0.1' is not between 1 and 60"),
        (["--max-rss-growth", "-1"], "--max-rss-growth: '-1' must be > 0"),
        (["--minutes", "2", "--warm-up-minutes", "2"], "--warm-up-minutes: 2 leaves nothing of --minutes 2"),
        (["--minutes", "3", "--warm-up-minutes", "2", "--sample-interval", "20"], "--sample-interval: 20 s gives"),
    ],
)
def test_bad_argument_is_one_line_naming_the_value(argv: list[str], named: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert named in usage_error(parse_args, argv, capsys)


def test_defaults_are_the_issue_s_soak() -> None:
    args = parse_args([])
    assert (args.minutes, args.rate, args.customers, args.warmup_minutes) == (12.0, 3000.0, 50_000, 2.0)
    assert args.sample_interval == 5.0
