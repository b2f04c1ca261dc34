"""Pure helpers of the bench: histogram quantiles like PromQL, exact sample quantiles, medians, targets.

No Kafka, no processes, no clock: ``tests/test_bench`` checks everything here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Bucket = tuple[float, float]  # (upper bound ``le``, cumulative count), as in a Prometheus histogram

PEERS = {"quix": "Quix", "bytewax": "Bytewax", "pathway": "Pathway"}  # system -> name in "monitor vs <name> peer"
SYSTEMS = ("ceiling", *PEERS, "monitor")
TARGET_RATE = 5000.0  # the offered rate the latency target is defined at
TARGET_CUSTOMERS = 1_000_000  # the population the recovery target is defined at


def histogram_quantile(q: float, buckets: Sequence[Bucket]) -> float | None:
    """The ``q`` quantile of cumulative ``buckets``, interpolated linearly inside a bucket like PromQL.

    Follows Prometheus' ``bucketQuantile``: buckets are sorted by bound and made monotonic, a rank in
    the ``+Inf`` bucket answers the highest finite bound, the first bucket starts at 0 (unless its bound
    is ≤ 0). ``None`` when nothing was observed or there is no ``+Inf`` bucket (PromQL's NaN).
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = _monotonic(merge_buckets(buckets))
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return None
    observations = ordered[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    index = next((i for i in range(len(ordered) - 1) if ordered[i][1] >= rank), len(ordered) - 1)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    if index == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    start = 0.0 if index == 0 else ordered[index - 1][0]
    end, count = ordered[index]
    if index > 0:
        count -= ordered[index - 1][1]
        rank -= ordered[index - 1][1]
    if count <= 0:  # q = 0 over an empty first bucket: PromQL says NaN, the bucket's start is more useful
        return start
    return start + (end - start) * (rank / count)


def merge_buckets(buckets: Iterable[Bucket]) -> list[Bucket]:
    """Sum buckets with the same bound (series of one histogram that differ in other labels), sorted."""
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count
    return sorted(merged.items())


def _monotonic(buckets: list[Bucket]) -> list[Bucket]:
    # Scrapes are not atomic across series, so a higher bucket can lag a lower one by a few counts.
    fixed: list[Bucket] = []
    high = 0.0
    for bound, count in buckets:
        high = max(high, count)
        fixed.append((bound, high))
    return fixed


def bucket_delta(before: Sequence[Bucket], after: Sequence[Bucket]) -> list[Bucket]:
    """The buckets of what was observed between two scrapes; a bucket that went down means a restart."""
    old = dict(merge_buckets(before))
    delta: list[Bucket] = []
    for bound, count in merge_buckets(after):
        previous = old.get(bound, 0.0)
        delta.append((bound, count - previous if count >= previous else count))
    return delta


def parse_histogram(metrics_text: str, name: str) -> list[Bucket] | None:
    """The buckets of histogram ``name`` in a ``/metrics`` page, summed over its labels; None if absent."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name != name or family.type != "histogram":
            continue
        return sample_buckets(family.samples)
    return None


def parse_histograms_by(metrics_text: str, name: str, label: str) -> dict[str, list[Bucket]]:
    """The buckets of histogram ``name`` for each value of ``label`` (summed over the other labels)."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == name and family.type == "histogram":
            by_value: dict[str, list[Any]] = {}
            for sample in family.samples:
                by_value.setdefault(sample.labels.get(label, ""), []).append(sample)
            return {value: sample_buckets(samples) for value, samples in by_value.items()}
    return {}


def sample_buckets(samples: Iterable[Any]) -> list[Bucket]:
    """The cumulative buckets among a histogram family's samples (of one label set, or summed over them)."""
    return merge_buckets((float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket"))


def nearest_rank(samples: Sequence[float], q: float) -> float | None:
    """Exact nearest-rank quantile: the smallest sample with at least ``q`` of all samples ≤ it."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def crossing_time(t0: float, n0: float, t1: float, n1: float, target: float) -> float:
    """When a count that went from ``n0`` (at ``t0``) to ``n1`` (at ``t1``) passed ``target``, linearly."""
    if n1 <= n0:
        return t1
    share = min(1.0, max(0.0, (target - n0) / (n1 - n0)))
    return t0 + share * (t1 - t0)


def processed_messages(metrics_text: str) -> int:
    """What a worker is done with: ``retention_events_total`` plus ``retention_events_rejected_total``."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name in ("retention_events", "retention_events_rejected"):
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return int(total)


def median(values: Iterable[float | int | None]) -> float | None:
    """Median of the values that were measured; None when none was."""
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


@dataclass
class Result:
    """What one system did in one repeat; None means not measured (shown as n/a)."""

    system: str
    status: str = "ok"  # ok | timeout | failed | skipped
    events: int | None = None  # messages in the timed backlog
    seconds: float | None = None
    events_per_s: float | None = None
    cpu_us_per_event: float | None = None
    offered_rate: float | None = None
    latency_samples: int | None = None
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    latency_drain_s: float | None = None  # last paced send → all processed: small when it kept up
    paced_cpu_cores: float | None = None  # CPU seconds per second while the paced slice was processed
    loop_stall_max_s: float | None = None  # the monitor's longest event-loop stall then (its bucket's bound)
    peak_rss_bytes: float | None = None
    rss_after_bytes: float | None = None
    rss_idle_bytes: float | None = None
    customers: int | None = None
    bytes_per_customer: float | None = None
    recovery_s: float | None = None
    state_disk_bytes: float | None = None  # state kept in files (the peer's RocksDB), not in RSS
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Result:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


_STATUS_ORDER = ("ok", "skipped", "timeout", "failed")
_TEXT_FIELDS = ("system", "status", "notes")


def summarize(runs: Sequence[Result]) -> Result:
    """The median of every measured field over the repeats of one system; the worst status; all notes."""
    if not runs:
        raise ValueError("no runs to summarize")
    summary = Result(runs[0].system)
    for f in fields(Result):
        if f.name not in _TEXT_FIELDS:
            setattr(summary, f.name, median(getattr(r, f.name) for r in runs))
    summary.status = max((r.status for r in runs), key=_STATUS_ORDER.index)
    summary.notes = list(dict.fromkeys(note for r in runs for note in r.notes))
    return summary


def bytes_per_customer(rss_after: float | None, rss_idle: float | None, customers: int | None) -> float | None:
    if rss_after is None or rss_idle is None or not customers:
        return None
    return (rss_after - rss_idle) / customers


@dataclass(frozen=True)
class Target:
    """One goal with its verdict: pass, fail or n/a (not measured / not comparable)."""

    name: str
    goal: str
    value: str
    verdict: str
    note: str = ""


def check_targets(summary: dict[str, Result], offered_rate: float, customers: int) -> list[Target]:
    """The targets, judged on ratios within the same run."""
    mon, ceil = summary.get("monitor"), summary.get("ceiling")
    rate = _get(mon, "events_per_s")
    targets = [
        _ratio_target("monitor vs ceiling", "≥ 0.5 x the ceiling's events/s", rate, _get(ceil, "events_per_s"), 0.5),
    ]
    for peer, name in PEERS.items():
        base = _get(summary.get(peer), "events_per_s")
        targets.append(_ratio_target(f"monitor vs {name} peer", "≥ 1.5 x the peer's events/s", rate, base, 1.5))
    p99 = _get(mon, "latency_p99_s")
    note = "" if offered_rate == TARGET_RATE else f"offered {offered_rate:,.0f}/s; the target is at 5,000/s"
    targets.append(_limit_target("monitor p99 latency", "≤ 1 s at 5,000 events/s offered", p99, 1.0,
                                 shown=f"{p99:.3f} s" if p99 is not None else "n/a", note=note))
    per = _get(mon, "bytes_per_customer")
    targets.append(_limit_target("memory per tracked customer", "≤ 1 KiB", per, 1024.0,
                                 shown=f"{per:,.0f} B" if per is not None else "n/a"))
    recovery = _get(mon, "recovery_s")
    scale = "" if customers >= TARGET_CUSTOMERS else f"measured with {customers:,} customers; the target is for 1M"
    targets.append(_limit_target("restart recovery", "≤ 60 s with 1M customers", recovery, 60.0,
                                 shown=f"{recovery:.1f} s" if recovery is not None else "n/a", note=scale))
    return targets


def _get(result: Result | None, name: str) -> float | None:
    if result is None:
        return None
    value = getattr(result, name)
    return None if value is None else float(value)


def _ratio_target(name: str, goal: str, value: float | None, base: float | None, factor: float) -> Target:
    if value is None or not base:
        return Target(name, goal, "n/a", "n/a")
    ratio = value / base
    return Target(name, goal, f"{ratio:.3g} x", "pass" if ratio >= factor else "fail")


def _limit_target(name: str, goal: str, value: float | None, limit: float, *, shown: str, note: str = "") -> Target:
    if value is None:
        return Target(name, goal, "n/a", "n/a", note)
    return Target(name, goal, shown, "pass" if value <= limit else "fail", note)
