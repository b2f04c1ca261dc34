"""The workers mode's pure parts (``bench/run.py --workers 1,2,4``): what one cluster size measured,
its ratios to one worker, the targets, and the checks on assignments and ``/kpis`` answers.

No Kafka, no processes, no clock: ``tests/test_bench/test_workers.py`` checks everything here.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.stats import Target, bytes_per_customer, processed_messages

CPU_FACTOR = 1.2  # all workers' CPU per event at N ≤ this x one worker's
MEMORY_FACTOR = 1.2  # each worker's RSS growth per customer at N ≤ this / N x one worker's


def workers(n: int) -> str:
    """``1 worker``, ``2 workers``."""
    return f"{n} worker{'' if n == 1 else 's'}"


def duplicates(metrics_text: str) -> int:
    """``retention_events_duplicate_total``: events whose id the worker had applied already."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "retention_events_duplicate":
            return int(sum(s.value for s in family.samples if s.name.endswith("_total")))
    return 0


def distinct_processed(metrics_text: str) -> int:
    """Processed messages (applied + dead-lettered, as :func:`bench.stats.processed_messages`) minus duplicates.

    A rebalance while workers join replays what the previous owner applied but had not committed yet; the
    new owner counts the replay in ``retention_events_total`` (duplicates included) and as a duplicate.
    """
    return processed_messages(metrics_text) - duplicates(metrics_text)


@dataclass(frozen=True)
class Look:
    """One look at a worker's ``/ready``: ready or not, the partitions it owns, and what it said."""

    status: int  # 0: nothing answered
    partitions: tuple[int, ...] = ()

    @property
    def ready(self) -> bool:
        return self.status == 200


def ready_look(status: int, body: str) -> Look:
    """A ``/ready`` answer (200 or 503, both with ``partitions``) as a :class:`Look`."""
    try:
        parts = json.loads(body).get("partitions") or []
        return Look(status, tuple(sorted(int(p) for p in parts)))
    except (ValueError, TypeError, AttributeError):
        return Look(status)


def covers(owned: Iterable[Iterable[int]], partitions: int) -> bool:
    """Whether the workers' owned partitions are ``0 … partitions-1``, each owned by exactly one worker."""
    return sorted(p for parts in owned for p in parts) == list(range(partitions))


def kpi_answer(status: int, body: str) -> dict[str, Any] | None:
    """A ``/kpis`` answer minus its ``worker`` block (that worker's own state); None unless it answered 200."""
    if status != 200:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    answer.pop("worker", None)
    return answer


_MISSING = object()


def differences(a: Any, b: Any, path: str = "", limit: int = 5) -> list[str]:
    """Where two JSON values differ, as ``path: a != b``, at most ``limit`` of them (to name a wrong answer)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b), key=str)
        pairs = [(f"{path}.{k}" if path else str(k), a.get(k, _MISSING), b.get(k, _MISSING)) for k in keys]
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = [(f"{path}[{i}]", x, y) for i, (x, y) in enumerate(zip(a, b, strict=True))]
    else:
        return [] if a == b else [f"{path or '.'}: {_short(a)} != {_short(b)}"]
    out: list[str] = []
    for sub, x, y in pairs:
        if len(out) >= limit:
            break
        out += differences(x, y, sub, limit - len(out))
    return out


def _short(value: Any) -> str:
    return "(missing)" if value is _MISSING else json.dumps(value)[:60]


@dataclass
class Handover:
    """One of the workers killed with SIGKILL after the backlog, and how long the survivors took."""

    victim: int  # 1-based index of the killed worker
    owned_s: float | None = None  # kill → the survivors own every partition
    first_exact_s: float | None = None  # kill → a survivor answers what the cluster answered before the kill
    all_exact_s: float | None = None  # kill → every survivor does


@dataclass
class ScaleResult:
    """What N workers of one app id did with the backlog; None means not measured (shown as n/a)."""

    workers: int
    status: str = "ok"  # ok | timeout | failed
    events: int | None = None  # messages in the backlog
    customers: int | None = None  # customers with events in the backlog
    ready_s: float | None = None  # start → every worker ready and the partitions shared
    head_start: int | None = None  # processed before every worker was ready (not timed)
    seconds: float | None = None
    events_per_s: float | None = None
    cpu_us_per_event: float | None = None  # all workers' CPU from each one's first partitions to the end ÷ backlog
    owned: list[list[int]] = field(default_factory=list)  # per worker, when all were ready
    rss_idle_bytes: list[int | None] = field(default_factory=list)  # per worker of the idle cluster
    rss_after_bytes: list[int | None] = field(default_factory=list)  # per worker, settled after the backlog
    exact: bool | None = None  # every worker's /kpis answer equals one worker's
    answer_ms: float | None = None  # median seconds of one /kpis answer (every worker asked a few times), in ms
    handover: Handover | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def timed_share(self) -> float | None:
        """The share of the backlog processed after every worker was ready: what events/s covers."""
        if not self.events or self.head_start is None:
            return None
        return max(0, self.events - self.head_start) / self.events

    @property
    def growth_per_customer(self) -> list[float | None]:
        """Each worker's RSS after the backlog minus the idle workers' mean, per customer of the backlog."""
        idle = [r for r in self.rss_idle_bytes if r is not None]
        base = statistics.fmean(idle) if idle else None
        return [bytes_per_customer(after, base, self.customers) for after in self.rss_after_bytes]

    @property
    def growth_mean(self) -> float | None:
        known = [g for g in self.growth_per_customer if g is not None]
        return statistics.fmean(known) if known else None

    @property
    def growth_max(self) -> float | None:
        return max((g for g in self.growth_per_customer if g is not None), default=None)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ScaleResult:
        names = {f.name for f in fields(cls)}
        result = cls(**{k: v for k, v in raw.items() if k in names and k != "handover"})
        if raw.get("handover"):
            result.handover = Handover(**raw["handover"])
        return result


def ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


@dataclass(frozen=True)
class Compared:
    """One cluster size against one worker: the ratios the targets judge."""

    workers: int
    cpu_ratio: float | None  # CPU µs/event at N ÷ at 1
    memory_ratio: float | None  # the largest per-worker RSS growth per customer at N ÷ at 1
    memory_goal: float  # MEMORY_FACTOR / N


def compare(results: Sequence[ScaleResult]) -> list[Compared]:
    one = next((r for r in results if r.workers == 1), None)
    cpu1, mem1 = (one.cpu_us_per_event, one.growth_max) if one else (None, None)
    return [Compared(r.workers, ratio(r.cpu_us_per_event, cpu1), ratio(r.growth_max, mem1), MEMORY_FACTOR / r.workers)
            for r in results]  # fmt: skip


def _judged(name: str, goal: str, value: float | None, limit: float) -> Target:
    if value is None:
        return Target(name, goal, "n/a", "n/a")
    return Target(name, goal, f"{value:.2f} x", "pass" if value <= limit else "fail")


def scaling_targets(results: Sequence[ScaleResult]) -> list[Target]:
    """Per N ≥ 2: CPU per event ≤ 1.2 x one worker's, each worker's memory per customer ≤ 1.2 / N x one
    worker's; over all N: every worker answers ``/kpis`` exactly as one worker does."""
    targets = []
    for c in compare(results):
        if c.workers == 1:
            continue
        targets.append(_judged(f"CPU per event, {c.workers} workers", f"≤ {CPU_FACTOR:g} x one worker's (all "
                               "workers' CPU)", c.cpu_ratio, CPU_FACTOR))  # fmt: skip
        targets.append(_judged(f"memory per customer, {c.workers} workers", f"≤ {c.memory_goal:.2f} x one worker's "
                               f"({MEMORY_FACTOR:g} / {c.workers}; the largest worker)", c.memory_ratio,
                               c.memory_goal))  # fmt: skip
    verdicts = [r.exact for r in results]
    shown = "n/a" if None in verdicts else ("yes" if all(verdicts) else "no")
    verdict = {"yes": "pass", "no": "fail"}.get(shown, "n/a")
    targets.append(Target("exact across workers", "every worker's /kpis = one worker's", shown, verdict))
    return targets
