"""The CLV ranking of a store's customers at an instant: who is known (signed up or ordered) and their
historical CLV, from the order, refund and sign-up facts before it; the base of the ABC classes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import retention_native

from metrics import facts as F
from metrics.abc_classes import Cut, class_codes
from metrics.day_columns import NO_VALUE
from metrics.frozen import Read, Scans

I64 = npt.NDArray[np.int64]
EMPTY = np.zeros(0, np.int64)
KINDS = (F.ORDER, F.REFUND, F.NEW)


def reads(at_us: int) -> list[Read]:
    """The scans :func:`known` makes."""
    return [(kind, None, at_us) for kind in KINDS]


def by_customer(source: Scans, kind: str, end: int) -> tuple[I64, I64, I64]:
    """``(customer, weight, weight * value)`` of every fact of ``kind`` before ``end``."""
    _times, values, _combos, customers, weights = source.scan(kind, None, end)
    return customers, weights, np.where(values == NO_VALUE, 0, values) * weights


def known(source: Scans, at_us: int) -> tuple[I64, I64]:
    """``(who, clv)`` of every customer known at ``at_us``, sorted by who; net CLV in micro-units."""
    parts = [by_customer(source, kind, at_us) for kind in KINDS]
    whos = np.concatenate([who for who, _, _ in parts])
    if not len(whos):
        return EMPTY, EMPTY
    (_, order_w, order_v), (_, _, refund_v), (_, new_w, _) = parts
    money = np.concatenate([order_v, -refund_v, np.zeros(len(new_w), np.int64)])
    # A refund does not make a customer known; an order or a sign-up does.
    known_w = np.concatenate([order_w, np.zeros(len(refund_v), np.int64), new_w])
    # per customer, by a compiled hash table without the GIL: np.unique's sort of millions of facts took
    # most of a ranking's time
    distinct, sums = retention_native.sums_by_key(whos, [money, known_w])
    uniq, net, weight = (np.frombuffer(b, np.int64) for b in (distinct, *sums))
    keep = weight > 0
    return uniq[keep], net[keep]


def ranked(who: I64, clv: I64) -> tuple[I64, I64]:
    """``(clv, who)`` of the customers with a positive CLV, highest first (ties by who)."""
    order = np.lexsort((who, -clv))
    order = order[clv[order] > 0]
    return clv[order], who[order]


def classes(who: I64, clv: I64, cuts: list[Cut]) -> tuple[I64, npt.NDArray[np.int8]]:
    """``(who, class index)`` of the customers :func:`known` gave, given the cluster's cut points."""
    codes = np.full(len(who), 2, np.int8)
    positive = clv > 0
    codes[positive] = class_codes(clv[positive], who[positive], cuts)
    return who, codes
