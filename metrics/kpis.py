"""Lifecycle KPIs of KPIS.md for one period and segment, with every input needed to recompute them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from metrics.index import CountView
from metrics.lifecycle import (
    ACTIVE_DOWN,
    ACTIVE_UP,
    LOST,
    LOST_REASON,
    MOVED_IN,
    MOVED_OUT,
    NEW,
    POOL_DOWN,
    POOL_UP,
    REACTIVATED,
)


def ratio(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator``, or ``None`` (undefined) when the denominator is 0."""
    return None if denominator == 0 else numerator / denominator


@dataclass(frozen=True)
class CustomerKpis:
    """B, E, N, L, R (KPIS.md) of one segment in ``[start, end)``, and the KPIs made of them.

    For a dimension segment, customers moving in and out (``customer.updated``) are neither new
    nor lost: ``retention = (E - N - moved_in) / B`` so that only customers of the segment at the
    start count as retained, and ``E = B + N + R - L + moved_in - moved_out``. For ``all`` the move
    terms are 0 and these are exactly KPIS.md's formulas.
    """

    B: int
    E: int
    N: int
    L: int
    R: int
    moved_in: int
    moved_out: int
    lost_at_start: int
    lost_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def retention_rate(self) -> float | None:
        return ratio(self.E - self.N - self.moved_in, self.B)

    @property
    def churn_rate(self) -> float | None:
        return ratio(self.L, self.B)

    @property
    def winback_rate(self) -> float | None:
        return ratio(self.R, self.lost_at_start + self.L)

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": asdict(self),
            "retention_rate": self.retention_rate,
            "churn_rate": self.churn_rate,
            "winback_rate": self.winback_rate,
        }


def _level(view: CountView, segment: str, up: tuple[str, ...], down: tuple[str, ...], t: int) -> int:
    return sum(view.count(segment, k, None, t) for k in up) - sum(view.count(segment, k, None, t) for k in down)


def customer_kpis(view: CountView, segment: str, start_us: int, end_us: int) -> CustomerKpis:
    """Compute the lifecycle KPIs of ``segment`` for the period ``[start_us, end_us)``."""

    def n(kind: str) -> int:
        return view.count(segment, kind, start_us, end_us)

    reasons = {
        k.removeprefix(LOST_REASON): c
        for k in sorted(view.kinds(segment, LOST_REASON))
        if (c := n(k))
    }
    return CustomerKpis(
        B=_level(view, segment, ACTIVE_UP, ACTIVE_DOWN, start_us),
        E=_level(view, segment, ACTIVE_UP, ACTIVE_DOWN, end_us),
        N=n(NEW),
        L=n(LOST),
        R=n(REACTIVATED),
        moved_in=n(MOVED_IN),
        moved_out=n(MOVED_OUT),
        lost_at_start=_level(view, segment, POOL_UP, POOL_DOWN, start_us),
        lost_by_reason=reasons,
    )


def active_now(view: CountView, segment: str, now_us: int) -> int:
    return _level(view, segment, ACTIVE_UP, ACTIVE_DOWN, now_us)
