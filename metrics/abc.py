"""ABC segmentation (seed 003): customers ranked by historical CLV, descending.

A is the smallest top set whose CLV reaches the first threshold (default 80 %) of the total, B the
customers after it up to the second threshold (95 %), C the rest — including every customer whose
CLV is not positive. Ties are broken by key (any sortable customer id: the KPI store uses a 63-bit hash
of the customer id) so the classes never depend on arrival order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

CLASSES = ("A", "B", "C")

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class AbcSummary:
    """Customers and CLV share per class."""

    customers: dict[str, int]
    clv_share: dict[str, float | None]
    total_clv: float


def classify(clv: Mapping[K, int], thresholds: tuple[float, float] = (0.8, 0.95)) -> dict[K, str]:
    """Class of every key of ``clv`` (integer CLV, e.g. micro-units)."""
    positive: list[tuple[int, Any]] = sorted(((v, k) for k, v in clv.items() if v > 0),
                                             key=lambda vk: (-vk[0], vk[1]))
    total = sum(v for v, _ in positive)
    out = dict.fromkeys(clv, "C")
    cumulative = 0
    a_limit, b_limit = thresholds[0] * total, thresholds[1] * total
    for value, key in positive:
        # A customer belongs to the class whose threshold was not yet reached before it.
        out[key] = "A" if cumulative < a_limit else "B" if cumulative < b_limit else "C"
        cumulative += value
    return out


def summarize(clv: Mapping[K, int], classes: Mapping[K, str], unit: float = 1e6) -> AbcSummary:
    customers = dict.fromkeys(CLASSES, 0)
    value = dict.fromkeys(CLASSES, 0)
    for key, cls in classes.items():
        customers[cls] += 1
        value[cls] += max(clv[key], 0)
    total = sum(value.values())
    share = {c: (None if total == 0 else value[c] / total) for c in CLASSES}
    return AbcSummary(customers, share, total / unit)
