"""The soak run's pure parts: what a sample holds, line fits, per-minute rows and the "flat" verdict.

No Kafka, no processes, no clock: ``tests/test_bench/test_soak.py`` checks everything here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from bench.stats import Bucket, bucket_delta, histogram_quantile, sample_buckets

TEN_MIN = 600.0
# A lag whose fitted rise over the measured span exceeds this share of the bound is trending upward.
# Lag is sampled at random points of batch cycles, so it jitters by up to a batch; a quarter of the
# bound stays clear of that noise over ~100 samples and still catches a worker slowly falling behind.
TREND_SHARE = 0.25
MIN_ACHIEVED = 0.99  # the producer must deliver this share of the offered rate, or the run proves nothing
# Faust commits the apply agent's offsets every broker_commit_interval (its default, which the app
# keeps): end - committed saw-tooths up to that many seconds of packs even when nothing waits.
FAUST_COMMIT_S = 2.8
PACK_WINDOW_S = 30.0  # the pack rate that converts the apply lag to seconds: one interval is too jumpy
TAIL_SHARE = 0.1  # a last minute shorter than this share of a minute is folded into the one before


@dataclass
class Scrape:
    """What one ``/metrics`` page says about the worker (None: the series is not exported yet)."""

    processed: int = 0  # valid events + dead-lettered messages
    route_lag: int | None = None  # input messages not yet read by the route stage
    apply_lag: int | None = None  # packs in events-by-customer not yet committed by the apply agent
    rekeyed_end: int | None = None  # packs written to events-by-customer so far
    customers: int | None = None  # customers in the ABC ranking: every one signed up or with an order
    active: int | None = None
    visible: list[Bucket] = field(default_factory=list)  # cumulative, publish -> KPI visible
    stages: dict[str, list[Bucket]] = field(default_factory=dict)  # cumulative, retention_stage_seconds by stage
    loop_stalls: list[Bucket] = field(default_factory=list)  # cumulative, how late the loop's timer fired
    gauges_at: float | None = None  # epoch seconds the served KPI gauges were computed
    facts: int | None = None  # KPI facts held: retained data, which grows with every event by design
    fact_bytes: int | None = None  # bytes the store's fact columns hold allocated


_HISTOGRAMS = {"retention_event_visible_seconds": "visible", "retention_event_loop_stall_seconds": "loop_stalls"}
_GAUGES: dict[str, tuple[str, type[int] | type[float]]] = {
    "retention_kpi_gauges_timestamp_seconds": ("gauges_at", float), "retention_kpi_store_facts": ("facts", int),
    "retention_kpi_store_bytes": ("fact_bytes", int)}


def parse_scrape(text: str) -> Scrape:
    """The soak's numbers from a ``/metrics`` page, in one pass over it."""
    out = Scrape()
    route: int | None = None
    ends: dict[tuple[str, str], float] = {}
    commits: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        name, samples = family.name, family.samples
        if name in ("retention_events", "retention_events_rejected"):
            out.processed += int(sum(s.value for s in samples if s.name.endswith("_total")))
        elif name == "retention_consumer_lag_records":
            route = int(sum(s.value for s in samples if s.labels.get("stage") == "route"))
        elif name == "retention_faust_topic_partition_end_offset":
            ends = {(s.labels["topic"], s.labels["partition"]): s.value for s in samples}
        elif name == "retention_faust_topic_partition_offset_commited":  # sic: Faust's spelling
            commits = {(s.labels["topic"], s.labels["partition"]): s.value for s in samples}
        elif name in _HISTOGRAMS:
            setattr(out, _HISTOGRAMS[name], sample_buckets(samples))
        elif name == "retention_stage_seconds":
            for stage in {s.labels["stage"] for s in samples if "stage" in s.labels}:
                out.stages[stage] = sample_buckets([s for s in samples if s.labels.get("stage") == stage])
        elif name == "retention_abc_customers" and samples:
            out.customers = int(sum(s.value for s in samples))
        elif name == "retention_customers_active":
            out.active = next((int(s.value) for s in samples if s.labels.get("segment") == "all"), None)
        elif name in _GAUGES and samples:
            attribute, kind = _GAUGES[name]
            setattr(out, attribute, kind(samples[0].value))
    out.route_lag = route
    if ends:
        out.rekeyed_end = int(sum(ends.values()))
        # Faust reports nothing committed for a partition before its first commit: all of it is lag then.
        out.apply_lag = int(sum(max(0.0, end - commits.get(tp, 0.0)) for tp, end in ends.items()))
    return out


def busy_seconds(proc_stat: str, ticks_per_s: float = 100.0) -> float | None:
    """CPU seconds all cores spent busy since boot, from ``/proc/stat``'s ``cpu`` line."""
    for line in proc_stat.splitlines():
        if line.startswith("cpu "):
            ticks = [int(x) for x in line.split()[1:]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
            # guest time is already counted in user: only the first 8 fields add up to the total.
            return (sum(ticks[:8]) - idle) / ticks_per_s
    return None


@dataclass
class Sample:
    """One look at the worker, the producer and the machine, ``t`` seconds after the load started."""

    t: float
    rss_bytes: int | None
    worker_cpu_s: float | None  # cumulative, all threads
    bench_cpu_s: float  # this process: producer, simulator and scraping
    machine_busy_s: float | None  # cumulative, all cores
    sent: int  # acknowledged by the broker
    behind: int  # messages the producer was behind its schedule
    load1: float
    scrape_s: float | None  # None: the scrape failed
    scrape: Scrape = field(default_factory=Scrape)
    gauges_age_s: float | None = None  # how old the served KPI gauges were: grows when computing them slows

    def flat(self, previous: Sample | None) -> dict[str, float | int | None]:
        """This sample as one flat JSON row, with what happened since ``previous``."""
        s = self.scrape
        row: dict[str, float | int | None] = {
            "t": round(self.t, 3), "rss_bytes": self.rss_bytes, "worker_cpu_s": self.worker_cpu_s,
            "bench_cpu_s": round(self.bench_cpu_s, 3), "machine_busy_s": self.machine_busy_s, "sent": self.sent,
            "behind": self.behind, "load1": self.load1, "scrape_s": self.scrape_s, "processed": s.processed,
            "route_lag": s.route_lag, "apply_lag": s.apply_lag, "rekeyed_end": s.rekeyed_end,
            "customers": s.customers, "active": s.active, "gauges_age_s": self.gauges_age_s, "facts": s.facts,
            "fact_bytes": s.fact_bytes,
        }  # fmt: skip
        if previous is not None:
            span = interval(previous, self)
            row.update(events_per_s=span.events_per_s, worker_cores=span.worker_cores, bench_cores=span.bench_cores,
                       rest_cores=span.rest_cores, latency_samples=span.latency_samples, p50_s=span.p50_s,
                       p99_s=span.p99_s)  # fmt: skip
        return row


@dataclass(frozen=True)
class Line:
    slope: float  # per second
    intercept: float
    points: int

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x


def fit_line(points: Sequence[tuple[float, float]]) -> Line | None:
    """Least-squares line through ``points``; None with fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return Line(slope, my - slope * mx, n)


@dataclass(frozen=True)
class Interval:
    """What happened between two samples."""

    seconds: float
    events_per_s: float | None
    worker_cores: float | None
    bench_cores: float | None
    rest_cores: float | None  # the rest of the machine: Kafka, other engineers' tests…
    latency_samples: int
    p50_s: float | None
    p99_s: float | None
    stage_p99_s: dict[str, float | None] = field(default_factory=dict)  # where the time went, per stage
    loop_stall_max_s: float | None = None  # the upper bound of the longest stall's bucket


def interval(a: Sample, b: Sample) -> Interval:
    seconds = b.t - a.t
    if seconds <= 0:
        return Interval(0.0, None, None, None, None, 0, None, None)
    rate = None
    if a.scrape_s is not None and b.scrape_s is not None:
        rate = max(0, b.scrape.processed - a.scrape.processed) / seconds
    worker = _per_s(a.worker_cpu_s, b.worker_cpu_s, seconds)
    bench = _per_s(a.bench_cpu_s, b.bench_cpu_s, seconds)
    busy = _per_s(a.machine_busy_s, b.machine_busy_s, seconds)
    rest = None if busy is None or worker is None or bench is None else max(0.0, busy - worker - bench)
    delta = bucket_delta(a.scrape.visible, b.scrape.visible) if b.scrape.visible else []
    count = int(max((c for _, c in delta), default=0.0))
    stages = {stage: histogram_quantile(0.99, bucket_delta(a.scrape.stages.get(stage, []), buckets))
              for stage, buckets in sorted(b.scrape.stages.items())}  # fmt: skip
    stalls = bucket_delta(a.scrape.loop_stalls, b.scrape.loop_stalls) if b.scrape.loop_stalls else []
    return Interval(seconds, rate, worker, bench, rest, count, histogram_quantile(0.5, delta),
                    histogram_quantile(0.99, delta), stages, histogram_quantile(1.0, stalls))  # fmt: skip


def _per_s(a: float | None, b: float | None, seconds: float) -> float | None:
    return None if a is None or b is None else max(0.0, b - a) / seconds


@dataclass(frozen=True)
class MinuteRow:
    """One line of the table: the samples of one minute, against the last sample before it."""

    minute: int  # 1-based
    warmup: bool
    rss_bytes: int | None  # at the minute's last sample
    customers: int | None
    route_lag_max: int | None
    apply_lag_max: int | None
    span: Interval
    load1: float
    scrape_max_s: float | None


def minute_rows(samples: Sequence[Sample], warmup_s: float, minute_s: float = 60.0) -> list[MinuteRow]:
    rows: list[MinuteRow] = []
    if len(samples) < 2:
        return rows
    last = samples[-1].t
    # The look taken just after the last send lands a moment past the final minute: it belongs to it.
    count = max(1, math.ceil(last / minute_s - TAIL_SHARE))
    for m in range(count):
        lo, hi = m * minute_s, (m + 1) * minute_s
        if m == count - 1:
            hi = max(hi, last)
        inside = [s for s in samples if lo < s.t <= hi + 1e-9]
        before = [s for s in samples if s.t <= lo]
        if not inside or not before:
            continue
        start, end = before[-1], inside[-1]
        scrapes = [s.scrape_s for s in inside if s.scrape_s is not None]
        rows.append(MinuteRow(
            minute=m + 1, warmup=(m + 1) * minute_s <= warmup_s + 1e-9, rss_bytes=end.rss_bytes,
            customers=end.scrape.customers,
            route_lag_max=_max(s.scrape.route_lag for s in inside),
            apply_lag_max=_max(s.scrape.apply_lag for s in inside),
            span=interval(start, end), load1=max(s.load1 for s in inside), scrape_max_s=max(scrapes, default=None),
        ))  # fmt: skip
    return rows


def _max(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass(frozen=True)
class Check:
    """One verdict line: pass, fail or n/a (not enough data)."""

    name: str
    verdict: str
    measured: str
    rule: str


@dataclass(frozen=True)
class Trend:
    """A series over the measured span: its fitted line, first/last/max values, the fitted change."""

    first: float
    last: float
    max: float
    per_10min: float  # fitted slope, per 10 minutes
    rise: float  # fitted change over the measured span
    start_fit: float  # the fitted value at the start of the span


def trend(points: Sequence[tuple[float, float]]) -> Trend | None:
    line = fit_line(points)
    if line is None:
        return None
    t0, t1 = points[0][0], points[-1][0]
    return Trend(points[0][1], points[-1][1], max(y for _, y in points), line.slope * TEN_MIN,
                 line.slope * (t1 - t0), line.at(t0))  # fmt: skip


@dataclass(frozen=True)
class Limits:
    rate: float  # offered events/s
    warmup_s: float
    max_rss_growth: float  # percent over the measured span
    max_lag_s: float  # seconds of traffic
    commit_s: float = FAUST_COMMIT_S  # allowance on the apply lag for Faust's commit cadence


@dataclass
class Verdict:
    checks: list[Check]
    rss: Trend | None
    route_lag: Trend | None  # seconds of traffic
    apply_lag: Trend | None  # seconds of packs
    customers: Trend | None
    span_s: float
    route_lag_max: int | None  # events
    apply_lag_max: int | None  # packs
    pack_rate: float | None  # packs/s into events-by-customer over the span
    bytes_per_new_customer: float | None  # RSS slope / customers slope: what each newcomer costs
    overall: Interval | None  # the measured span as one interval: events/s, CPU, latency p50/p99

    @property
    def passed(self) -> bool:
        return all(c.verdict == "pass" for c in self.checks)


def measured(samples: Sequence[Sample], warmup_s: float) -> list[Sample]:
    """The samples after the warm-up whose scrape answered (a failed scrape carries no lag)."""
    return [s for s in samples if s.t >= warmup_s and s.scrape_s is not None]


def lag_seconds(samples: Sequence[Sample], rate: float) -> list[tuple[float, float | None, float | None]]:
    """``(t, route lag, apply lag)`` in seconds of traffic for each sample.

    Route lag counts input events, so the offered rate converts it. Apply lag counts packs, and a
    pack holds more events the busier the worker is (a slower loop fetches more per pack), so it is
    divided by the pack rate of the last ``PACK_WINDOW_S``.
    """
    out: list[tuple[float, float | None, float | None]] = []
    known: list[Sample] = []  # samples with a pack count, oldest first
    for s in samples:
        route = None if s.scrape.route_lag is None else s.scrape.route_lag / rate
        apply = None
        if s.scrape.rekeyed_end is not None:
            ref = next((k for k in reversed(known) if s.t - k.t >= PACK_WINDOW_S), known[0] if known else None)
            if ref is not None and ref.scrape.rekeyed_end is not None and s.t > ref.t:
                packs_per_s = (s.scrape.rekeyed_end - ref.scrape.rekeyed_end) / (s.t - ref.t)
                if packs_per_s > 0 and s.scrape.apply_lag is not None:
                    apply = s.scrape.apply_lag / packs_per_s
            known.append(s)
        out.append((s.t, route, apply))
    return out


def judge(samples: Sequence[Sample], limits: Limits, *, achieved_rate: float | None) -> Verdict:
    """Flat means: RSS grew less than ``max_rss_growth`` % over the span, each lag stayed under
    ``max_lag_s`` of traffic (plus Faust's commit interval for the apply lag) with no fitted rise
    above ``TREND_SHARE`` of that bound, and the producer really offered the rate."""
    span = measured(samples, limits.warmup_s)
    seconds = span[-1].t - span[0].t if len(span) > 1 else 0.0
    rss = trend([(s.t, float(s.rss_bytes)) for s in span if s.rss_bytes is not None])
    lags = [lag for lag, s in zip(lag_seconds(samples, limits.rate), samples, strict=True)
            if s.t >= limits.warmup_s and s.scrape_s is not None]  # fmt: skip
    route = trend([(t, r) for t, r, _ in lags if r is not None])
    apply = trend([(t, a) for t, _, a in lags if a is not None])
    customers = trend([(s.t, float(s.scrape.customers)) for s in span if s.scrape.customers is not None])
    ends = [(s.t, s.scrape.rekeyed_end) for s in span if s.scrape.rekeyed_end is not None]
    packs = None
    if len(ends) > 1 and ends[-1][0] > ends[0][0]:
        packs = (ends[-1][1] - ends[0][1]) / (ends[-1][0] - ends[0][0])
    per_customer = None
    if rss is not None and customers is not None and customers.per_10min > 0:
        per_customer = rss.per_10min / customers.per_10min
    route_max = _max(s.scrape.route_lag for s in span)
    apply_max = _max(s.scrape.apply_lag for s in span)
    checks = [
        _rss_check(rss, limits.max_rss_growth),
        _lag_check("route lag", route, limits.max_lag_s, route_max, "events"),
        _lag_check("apply lag", apply, limits.max_lag_s, apply_max, "packs", commit_s=limits.commit_s),
        _rate_check(achieved_rate, limits.rate),
    ]
    overall = interval(span[0], span[-1]) if len(span) > 1 else None
    return Verdict(checks, rss, route, apply, customers, seconds, route_max, apply_max, packs, per_customer, overall)


def _rss_check(rss: Trend | None, limit: float) -> Check:
    rule = f"fitted growth < {limit:g} % over the measured span"
    if rss is None or rss.start_fit <= 0:
        return Check("memory (RSS)", "n/a", "not enough samples", rule)
    growth = 100 * rss.rise / rss.start_fit
    mib = 2**20
    shown = (f"{rss.first / mib:,.0f} → {rss.last / mib:,.0f} MiB, slope {rss.per_10min / mib:+,.1f} MiB/10 min, "
             f"growth {growth:+.1f} %")  # fmt: skip
    return Check("memory (RSS)", "pass" if growth < limit else "fail", shown, rule)


def _lag_check(name: str, lag: Trend | None, bound_s: float, most: int | None, unit: str, *,
               commit_s: float = 0.0) -> Check:  # fmt: skip
    bound = bound_s + commit_s
    cadence = f" + {commit_s:g} s commit interval" if commit_s else ""
    rule = f"max ≤ {bound:g} s ({bound_s:g} s of traffic{cadence}), fitted rise ≤ {TREND_SHARE * bound:.2g} s"
    if lag is None:
        return Check(name, "n/a", "not enough samples", rule)
    count = "" if most is None else f" ({most:,} {unit} at most)"
    shown = f"max {lag.max:.2f} s{count}, slope {lag.per_10min:+.2f} s/10 min, fitted rise {lag.rise:+.2f} s"
    ok = lag.max <= bound and lag.rise <= TREND_SHARE * bound
    return Check(name, "pass" if ok else "fail", shown, rule)


def _rate_check(achieved: float | None, offered: float) -> Check:
    rule = f"≥ {100 * MIN_ACHIEVED:g} % of the offered {offered:,.0f}/s"
    if achieved is None:
        return Check("producer rate", "n/a", "nothing sent", rule)
    ok = achieved >= MIN_ACHIEVED * offered
    return Check("producer rate", "pass" if ok else "fail", f"{achieved:,.1f} events/s", rule)
