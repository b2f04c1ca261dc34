"""Cohort tables of docs/contract/kpis.md ("Cohorts"), hand-computed (tests/cohort_events.py and below)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cohort_events import EXPECTED_CUSTOMERS, EXPECTED_REVENUE, EXPECTED_SIZES, order, shop_events, signup
from pure_pipeline import PurePipeline

from core.errors import PeriodError
from core.periods import to_us
from core.settings import Settings
from metrics.cohort_grid import grid
from metrics.cohorts import CohortQuery, cohorts_plan
from metrics.planning import run

UTC = ZoneInfo("UTC")


def to_us_text(text: str) -> int:
    return to_us(datetime.fromisoformat(text))


def shop(workers: int = 1) -> PurePipeline:
    return PurePipeline(workers=workers).send(*shop_events())


def table(p: PurePipeline, segment: str = "all", kind: str = "customers", by: str = "month",
          first: str = "2025-01", last: str = "2025-04", tz: ZoneInfo = UTC) -> dict[str, Any]:
    return run(cohorts_plan(CohortQuery(by, first, last, segment, kind), tz), p.ask)


def cells(answer: dict[str, Any], key: str = "numerator") -> dict[str, list[Any]]:
    return {row["cohort"]: [cell[key] for cell in row["ages"]] for row in answer["cohorts"]}


def test_customer_cohorts_by_month() -> None:
    answer = table(shop())
    assert answer["as_of"] == "2025-04-10T00:00:00.000001+00:00"  # just after the newest event
    assert {row["cohort"]: row["customers"] for row in answer["cohorts"]} == EXPECTED_SIZES
    assert cells(answer) == EXPECTED_CUSTOMERS
    assert cells(answer, "value") == {"2025-01": [0.75, 0.5, 0.25, 0.5], "2025-02": [1.0, 1.0, 0.5],
                                      "2025-03": [None, None], "2025-04": [None]}
    assert cells(answer, "provisional") == {"2025-01": [False, False, False, True], "2025-02": [False, False, True],
                                            "2025-03": [False, True], "2025-04": [True]}
    assert [row["provisional"] for row in answer["cohorts"]] == [False, False, False, True]


def test_cohorts_keep_the_sign_up_segment_after_a_move() -> None:
    p = shop()
    # c signed up on basic and moved to pro in February: it stays in basic's January cohort.
    assert cells(table(p, "plan:basic")) == {"2025-01": [1, 1, 1, 1], "2025-02": [1, 1, 0],
                                             "2025-03": [0, 0], "2025-04": [0]}
    assert cells(table(p, "plan:pro")) == {"2025-01": [2, 1, 0, 1], "2025-02": [1, 1, 1],
                                           "2025-03": [0, 0], "2025-04": [0]}


def test_revenue_cohorts() -> None:
    answer = table(shop(), kind="revenue", last="2025-02")
    assert cells(answer) == EXPECTED_REVENUE
    assert cells(answer, "denominator") == {"2025-01": [150.0] * 4, "2025-02": [40.0] * 3}
    assert cells(answer, "value") == {"2025-01": [1.0, -20 / 150, 80 / 150, 30 / 150], "2025-02": [1.0, 0.0, 0.25]}


def test_a_late_earlier_sign_up_moves_the_customer_to_its_cohort() -> None:
    # The February sign-up arrives first; the January one, later, is the customer's sign-up: the store
    # retracts the February fact (a row of weight -1) and adds the January one.
    p = PurePipeline().send(signup("a", "2025-02-10T00:00:00Z", plan="basic"), signup("a", "2025-01-05T00:00:00Z"),
                            order("a", "a1", "2025-02-11T00:00:00Z", 10))
    assert p.statuses == ["applied", "applied", "applied"]
    assert {r["cohort"]: r["customers"] for r in table(p, last="2025-02")["cohorts"]} == {"2025-01": 1, "2025-02": 0}
    assert cells(table(p, "plan:pro", last="2025-02")) == {"2025-01": [1, 1], "2025-02": [0]}
    assert cells(table(p, "plan:basic", last="2025-02")) == {"2025-01": [0, 0], "2025-02": [0]}


def test_revenue_retention_is_undefined_without_revenue_in_the_sign_up_period() -> None:
    p = PurePipeline().send(signup("a", "2025-01-05T00:00:00Z"), order("a", "a1", "2025-02-05T00:00:00Z", 10))
    assert cells(table(p, kind="revenue", last="2025-01"), "value") == {"2025-01": [None, None]}


def test_the_same_table_from_several_workers() -> None:
    for kind in ("customers", "revenue"):
        for segment in ("all", "plan:basic"):
            assert table(shop(workers=3), segment, kind) == table(shop(), segment, kind)


def test_quarters_and_iso_weeks() -> None:
    p = shop()
    quarters = table(p, by="quarter", first="2025-Q1", last="2025-Q2")
    # Q1: all six; at its end c, e, f are active; in Q2 (to 10 April) b is back and f gone.
    assert [(row["cohort"], row["customers"]) for row in quarters["cohorts"]] == [("2025-Q1", 6), ("2025-Q2", 0)]
    assert cells(quarters) == {"2025-Q1": [3, 3], "2025-Q2": [0]}
    weeks = table(p, by="week", first="2025-W01", last="2025-W02")
    # ISO week 1 of 2025 starts on Monday 30 December 2024: a (2 Jan), b (3 Jan), c (4 Jan); week 2 empty.
    assert [(row["cohort"], row["customers"]) for row in weeks["cohorts"]] == [("2025-W01", 3), ("2025-W02", 0)]
    assert cells(weeks)["2025-W01"][:4] == [3, 3, 3, 2]  # a churns on Monday 20 January, in week 4 (age 3)


def test_the_configured_time_zone_decides_the_cohort() -> None:
    # 31 January 23:30 UTC is already 1 February in Berlin.
    p = PurePipeline(Settings(allowed_lateness="3650d", timezone="Europe/Berlin")).send(
        signup("a", "2025-01-31T23:30:00Z"), order("a", "a1", "2025-03-01T00:00:00Z", 5))
    assert {r["cohort"]: r["customers"] for r in table(p, last="2025-02")["cohorts"]} == {"2025-01": 1, "2025-02": 0}
    berlin = table(p, last="2025-02", tz=ZoneInfo("Europe/Berlin"))
    assert {r["cohort"]: r["customers"] for r in berlin["cohorts"]} == {"2025-01": 0, "2025-02": 1}
    assert berlin["cohorts"][1]["start"] == "2025-01-31T23:00:00+00:00"


def test_an_explicit_instant_shows_the_table_as_it_was() -> None:
    job = cohorts_plan(CohortQuery("month", "2025-01", "2025-04"), UTC, as_of_us=to_us_text("2025-02-12T00:00:00Z"))
    answer = run(job, shop().ask)
    # On 12 February: no March yet, f not signed up yet (20 February), b lost on 10 February.
    assert cells(answer) == {"2025-01": [3, 2], "2025-02": [1]}
    assert cells(answer, "provisional") == {"2025-01": [False, True], "2025-02": [True]}


def test_no_events_no_cohorts() -> None:
    assert table(PurePipeline())["cohorts"] == []


@pytest.mark.parametrize(("query", "message"), [
    (CohortQuery("day", "2025-01", "2025-02"), "cohort unit 'day' is not one of week, month, quarter"),
    (CohortQuery("month", "2025-Q1", "2025-02"), "cohort period '2025-Q1' is not a month like 2025-03"),
    (CohortQuery("month", "2025-13", "2025-02"), "cohort period '2025-13': month must be in 1..12"),
    (CohortQuery("week", "2025-W60", "2025-W61"), "cohort period '2025-W60': Invalid week: 60"),
    (CohortQuery("month", "2025-03", "2025-02"), "cohort period to='2025-02' is before from='2025-03'"),
    (CohortQuery("month", "2025-01", "2025-02", kind="money"), "cohort kind 'money' is not one of customers, revenue"),
    (CohortQuery("month", "2025-01", "2025-02", segment="abc:A"), "segment 'abc:A': cohorts are by sign-up segment"),
])
def test_bad_queries_are_refused_naming_the_bad_value(query: CohortQuery, message: str) -> None:
    with pytest.raises(PeriodError, match="^" + message.replace("(", r"\(")):
        query.check()


def test_the_grid_is_bounded() -> None:
    with pytest.raises(PeriodError, match="span more than 520 weeks"):
        grid("week", "2000-W01", "2000-W02", to_us_text("2025-01-01T00:00:00Z"), UTC)

