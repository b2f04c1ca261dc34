"""Plans that ask only long questions, answered from results kept for the session while the stores change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mixed import mixed_events
from pure_pipeline import PurePipeline

from core.periods import to_us
from metrics import facts as F
from metrics.exceptions import NotPinned
from metrics.gauges import cohort_rows
from metrics.pinned import Pinned, pinnable
from metrics.planning import Plan, abc, run, select
from metrics.questions import Question, answer, merge

AT = to_us(datetime(2025, 3, 1, tzinfo=UTC))
START = to_us(datetime(2024, 1, 1, tzinfo=UTC))
THRESHOLDS = (0.8, 0.95)


def plans(p: PurePipeline) -> list[Plan[Any]]:
    """An ABC ranking, the cohort gauges and the quantiles of order amounts, as ``p`` is now."""
    jobs: list[Plan[Any]] = [abc(AT, THRESHOLDS), cohort_rows(["all", "plan:pro"], AT, ZoneInfo("UTC"))]
    orders = p.ask([("count", "all", F.ORDER, START, AT)])[0]
    if orders:
        jobs.append(select([("nth", "all", F.ORDER, START, AT, rank) for rank in {1, (orders + 1) // 2, orders}]))
    return jobs


def pinned_ask(p: PurePipeline, pins: list[Pinned], later: list[dict[str, Any]]) -> Any:
    """Each store answers from its kept results; the events ``later`` arrive after the first round."""

    def ask(questions: list[Question]) -> list[Any]:
        parts = []
        for store, pin in zip(p.stores, pins, strict=True):
            prepared = store.prepare(questions, pin.results)
            if prepared is not None:
                pin.results.update(prepared())
            parts.append([answer(pin, q) for q in questions])
        if later:  # the follower writes between two rounds of the session
            p.send(*later)
            later.clear()
        return [merge(q, [part[i] for part in parts]) for i, q in enumerate(questions)]

    return ask


@settings(max_examples=60, deadline=None)
@given(mixed_events(), st.data())
def test_a_pinned_plan_sees_one_state_while_the_stores_change(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(events)))
    before = PurePipeline(workers=2).send(*events[:cut])
    for job, again in zip(plans(before), plans(before), strict=True):
        expected = run(job, before.ask)
        p = PurePipeline(workers=2).send(*events[:cut])
        pins = [Pinned() for _ in p.stores]
        assert run(again, pinned_ask(p, pins, list(events[cut:]))) == expected


def test_which_questions_a_pinned_session_may_ask() -> None:
    assert pinnable(("clv_span", AT))
    assert pinnable(("cohort_tables", ["all", "plan:pro"], [0, 1], 1, AT))
    assert pinnable(("histogram", "all", F.ORDER, 0, AT, 0, 10, 4))
    assert not pinnable(("count", "all", F.ORDER, 0, AT))
    assert not pinnable(("values", "abc:A@1@-@-", F.ORDER, 0, AT, 0, 10))  # a class reads the live index


def test_a_question_the_kept_results_cannot_answer_is_refused() -> None:
    with pytest.raises(NotPinned, match="'count' reads the live store"):
        answer(Pinned(), ("count", "all", F.ORDER, 0, AT))
    with pytest.raises(NotPinned, match="no kept result for 'ranking'"):
        answer(Pinned(), ("clv_span", AT))
