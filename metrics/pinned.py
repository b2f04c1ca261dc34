"""Long results kept for a read session, so that the store need not stop changing while it reads.

The long questions — a CLV ranking, cohort tables, the sorted values behind a quantile — are computed
on a thread from column views of one state of a store (:class:`metrics.store.Deferred`), and every
other question about them (a histogram of the ranking, the rows between two values, a class summary)
is answered from that result alone. A session that asks only such questions keeps the results it
computed: all its rounds then see one state of each, while the follower goes on writing. Sessions that
ask anything else hold the store instead (:mod:`streams.follow.holds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from metrics.exceptions import NotPinned
from metrics.questions import VALUE_QUESTIONS, Question
from metrics.store import CLV_QUESTIONS, Key, cohort_key

I64 = npt.NDArray[np.int64]
PINNABLE = CLV_QUESTIONS | VALUE_QUESTIONS | {"cohorts", "cohort_tables"}


def pinnable(question: Question) -> bool:
    """Whether ``question`` is answered from one long result alone; a class's segment (``abc:…``) is
    not: it reads the live index of the class's customers."""
    segment = question[1] if len(question) > 1 else None
    return question[0] in PINNABLE and not (isinstance(segment, str) and segment.startswith("abc:"))


class Pinned:
    """A :class:`metrics.questions.Source` over long results only (``results``, by memo key)."""

    def __init__(self) -> None:
        self.results: dict[Key, Any] = {}

    def _get(self, key: Key) -> Any:
        try:
            return self.results[key]
        except KeyError:
            raise NotPinned(f"no kept result for {key[0]!r} (ask pinnable questions only)") from None

    def _live(self, name: str) -> NoReturn:
        raise NotPinned(f"{name!r} reads the live store: ask it in a session that holds the store")

    def clv_ranking(self, at_us: int) -> tuple[I64, I64]:
        return self._get(("ranking", at_us))  # type: ignore[no-any-return]

    def nonpositive_customers(self, at_us: int) -> int:
        return int((self._get(("known", at_us))[1] <= 0).sum())

    def sorted_values(self, segment: str, kind: str, start: int, end: int) -> I64:
        return self._get(("values", segment, kind, start, end))  # type: ignore[no-any-return]

    def cohort_table(self, segment: str, bounds: Sequence[int], cohorts: int, until: int) -> list[Any]:
        return self._get(cohort_key("cohorts", segment, bounds, cohorts, until))  # type: ignore[no-any-return]

    def cohort_tables(self, segments: Sequence[str], bounds: Sequence[int], cohorts: int, until: int) -> list[Any]:
        return self._get(cohort_key("cohort_tables", segments, bounds, cohorts, until))  # type: ignore[no-any-return]

    def count(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        self._live("count")

    def total(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        self._live("total")

    def inside(self, segment: str, kind: str, start: int, end: int) -> int:
        self._live("inside")

    def kinds(self, segment: str, prefix: str) -> set[str]:
        self._live("kinds")

    def first(self, segment: str, kind: str) -> int | None:
        self._live("first")

    def newest(self) -> int | None:
        self._live("newest")
