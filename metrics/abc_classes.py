"""ABC segmentation: customers ranked by historical CLV, descending.

A is the smallest top set whose CLV reaches the first threshold (default 80 %) of the total, B the
customers after it up to the second threshold (95 %), C the rest — including every customer whose
CLV is not positive. Ties are broken by key (any sortable customer id: the KPI store uses a 63-bit hash
of the customer id) so the classes never depend on arrival order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

CLASSES = ("A", "B", "C")

K = TypeVar("K", bound=Hashable)
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class AbcSummary:
    """Customers and CLV share per class."""

    customers: dict[str, int]
    clv_share: dict[str, float | None]
    total_clv: float


def classify_arrays(keys: I64, clv: I64, thresholds: tuple[float, float] = (0.8, 0.95)) -> npt.NDArray[np.int8]:
    """Class index (0 = A, 1 = B, 2 = C) of every customer; ``keys`` are unique sortable ids."""
    out = np.full(len(keys), 2, np.int8)
    order = np.lexsort((keys, -clv))  # CLV descending, then key ascending
    ranked = order[clv[order] > 0]
    values = clv[ranked]
    total = int(values.sum())
    # A customer belongs to the class whose threshold was not yet reached before it.
    before = np.cumsum(values) - values
    a_limit, b_limit = thresholds[0] * total, thresholds[1] * total
    out[ranked] = np.where(before < a_limit, 0, np.where(before < b_limit, 1, 2))
    return out


Cut = Sequence[int] | None  # the last customer of a class, as (clv, who); None: the class is empty


def ranks_up_to(clv: I64, who: I64, cut: Cut) -> npt.NDArray[np.bool_]:
    """Which ``(clv, who)`` rank at or before ``cut`` in the ABC order (CLV descending, who ascending)."""
    if cut is None:
        return np.zeros(len(clv), np.bool_)
    c, w = cut
    up_to: npt.NDArray[np.bool_] = (clv > c) | ((clv == c) & (who <= w))
    return up_to


def class_codes(clv: I64, who: I64, cuts: Sequence[Cut]) -> npt.NDArray[np.int8]:
    """Class index (0 = A, 1 = B, 2 = C) of customers with a positive CLV, given the last A and B customer."""
    return np.where(ranks_up_to(clv, who, cuts[0]), 0, np.where(ranks_up_to(clv, who, cuts[1]), 1, 2)).astype(np.int8)


def summarize_arrays(clv: I64, classes: npt.NDArray[np.int8], unit: float = 1e6) -> AbcSummary:
    customers = np.bincount(classes, minlength=3)
    value = np.zeros(3, np.int64)
    np.add.at(value, classes.astype(np.intp), np.maximum(clv, 0))
    total = int(value.sum())
    return AbcSummary(
        {c: int(customers[i]) for i, c in enumerate(CLASSES)},
        {c: (None if total == 0 else int(value[i]) / total) for i, c in enumerate(CLASSES)},
        total / unit,
    )


def classify(clv: Mapping[K, int], thresholds: tuple[float, float] = (0.8, 0.95)) -> dict[K, str]:
    """Class of every key of ``clv`` (integer CLV, e.g. micro-units)."""
    keys: list[Any] = sorted(clv)
    codes = classify_arrays(np.arange(len(keys), dtype=np.int64), np.array([clv[k] for k in keys], np.int64),
                            thresholds)
    return {k: CLASSES[int(c)] for k, c in zip(keys, codes, strict=True)}


def summarize(clv: Mapping[K, int], classes: Mapping[K, str], unit: float = 1e6) -> AbcSummary:
    keys = list(clv)
    return summarize_arrays(np.array([clv[k] for k in keys], np.int64),
                            np.array([CLASSES.index(classes[k]) for k in keys], np.int8), unit)
