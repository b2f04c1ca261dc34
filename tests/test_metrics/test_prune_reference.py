"""Pruning old records: folded amounts stay with the segment they were made in."""

from __future__ import annotations

from apply_reference.prune import FOLDED_ORDERS, prune

from metrics.records import Rec, T

DAY = 86_400_000_000


def order(day: int, amount: int, id_: str) -> Rec:
    return Rec(day * DAY, T.ORDER_PLACED, id_, ref=id_, value=amount)


RECORDS = [
    Rec(0, T.SIGNED_UP, "s", segment={"plan": "basic"}),
    order(1, 10, "o1"),
    order(2, 20, "o2"),  # the first two orders stay
    order(3, 30, "o3"),
    order(4, 40, "o4"),
    Rec(5 * DAY, T.UPDATED, "u", segment={"plan": "pro"}),
    order(6, 60, "o6"),
    order(7, 70, "o7"),
    order(50, 500, "o50"),
]


def test_orders_fold_per_stretch_between_segment_moves() -> None:
    pruned = prune(RECORDS, cutoff=10 * DAY)
    assert [(r.time_us // DAY, r.type, r.id, r.value) for r in pruned] == [
        (0, T.SIGNED_UP, "s", None),
        (1, T.ORDER_PLACED, "o1", 10),
        (2, T.ORDER_PLACED, "o2", 20),
        (4, T.ORDER_PLACED, f"{FOLDED_ORDERS}@{4 * DAY}", 70),  # o3 + o4, still in plan basic
        (5, T.UPDATED, "u", None),
        (7, T.ORDER_PLACED, f"{FOLDED_ORDERS}@{7 * DAY}", 130),  # o6 + o7, in plan pro
        (50, T.ORDER_PLACED, "o50", 500),
    ]
    assert sum(r.value or 0 for r in pruned if r.type is T.ORDER_PLACED) == 730


def test_pruning_again_changes_nothing_and_later_folds_get_their_own_names() -> None:
    once = prune(RECORDS, cutoff=10 * DAY)
    assert prune(once, cutoff=10 * DAY) == once
    later = prune([*once, order(60, 600, "o60"), order(61, 1, "o61")], cutoff=61 * DAY)
    ids = [r.id for r in later]
    assert len(ids) == len(set(ids))
    assert [(r.id, r.value) for r in later if r.time_us > 5 * DAY] == [
        (f"{FOLDED_ORDERS}@{60 * DAY}", 1230),  # the day-7 fold, o50 and o60: all after the move
        ("o61", 1),
    ]
    assert sum(r.value or 0 for r in later if r.type is T.ORDER_PLACED) == 730 + 601
