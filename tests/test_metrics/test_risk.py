"""At-risk scoring (metrics/risk.py): one golden test per reason with exact scores, since and next check,
and properties: arrival order and redeliveries change nothing; nothing changes before next_check_us."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.periods import to_us
from core.settings import Settings
from metrics.records import Rec, T, decode_state
from metrics.risk import COMPLAINT, DAY_US, DETRACTOR, FREQUENCY, HOUR_US, QUIET, REFUNDS, Risk, RiskPolicy, score
from streams.apply.processor import Processor

T0 = to_us(datetime(2025, 1, 1, tzinfo=UTC))
POLICY = RiskPolicy()  # threshold 30; detractor 35, complaint 35, frequency 25, refunds 20, quiet A/B/C 40/20/10


def at(day: float, hours: float = 0) -> int:
    return T0 + int(day * DAY_US + hours * HOUR_US)


def rec(t: int, type_: T, id_: str, ref: str | None = None, text: str | None = None, value: int | None = None) -> Rec:
    return Rec(t, type_, id_, ref, text, value)


def signup(day: float = 0) -> Rec:
    return rec(at(day), T.SIGNED_UP, f"signup-{day}")


def order(day: float, oid: str) -> Rec:
    return rec(at(day), T.ORDER_PLACED, f"order-{oid}", oid, None, 10_000_000)


def codes(risk: Risk) -> list[tuple[str, int]]:
    return [(r.code, r.weight) for r in risk.reasons]


# -- who can be at risk ---------------------------------------------------------------------------


def test_only_active_customers_are_scored() -> None:
    nps0 = rec(at(5), T.SURVEY_NPS, "n", value=0)
    never = score([nps0], at(10), "A", POLICY)
    assert never == Risk(False, 0, False, (), None, None)
    churned = [signup(), nps0, rec(at(6), T.CHURNED, "churn")]
    assert score(churned, at(10), "A", POLICY) == Risk(False, 0, False, (), None, None)
    back = [*churned, rec(at(7), T.REACTIVATED, "back")]
    assert codes(score(back, at(10), None, POLICY)) == [(DETRACTOR, 35)]
    # a second sign-up does not undo a churn (facts.py ignores it the same way)
    again = [*churned, rec(at(7), T.SIGNED_UP, "signup-again")]
    assert not score(again, at(10), None, POLICY).active


def test_records_from_now_on_do_not_count_yet() -> None:
    records = [signup(), rec(at(5), T.SURVEY_NPS, "n", value=2)]
    before = score(records, at(5), "C", POLICY)  # the response at day 5 counts from day 5 + 1 µs
    assert (before.score, before.next_check_us) == (0, at(5) + 1)
    after = score(records, at(5) + 1, "C", POLICY)
    assert (after.score, after.at_risk, after.since_us) == (35, True, at(5))


# -- one golden test per reason -------------------------------------------------------------------


def test_detractor_nps() -> None:
    records = [signup(), rec(at(10), T.SURVEY_NPS, "n1", value=6)]
    risk = score(records, at(20), "B", POLICY)
    assert risk.score == 35
    assert risk.at_risk
    (reason,) = risk.reasons
    assert (reason.code, reason.weight, reason.detail, reason.since_us) == (
        DETRACTOR, 35, "NPS 6 on 2025-01-11", at(10))
    assert risk.since_us == at(10)
    # next: the survey is the latest activity, so the customer goes quiet at day 70 (before day 100,
    # when the response leaves the 90-day lookback)
    assert risk.next_check_us == at(70)
    gone = score(records, at(100), "B", POLICY)  # quiet (B: 20) but no longer a detractor
    assert (codes(gone), gone.at_risk, gone.next_check_us) == ([(QUIET, 20)], False, None)


@pytest.mark.parametrize(("nps", "csat", "detail"), [
    (7, None, None),  # a passive is no detractor
    (0, None, "NPS 0 on 2025-01-11"),
    (None, 2, "CSAT 2 on 2025-01-12"),
    (None, 3, None),
    (3, 1, "NPS 3 on 2025-01-11; CSAT 1 on 2025-01-12"),
])
def test_detractor_nps_and_csat(nps: int | None, csat: int | None, detail: str | None) -> None:
    records = [signup()]
    if nps is not None:
        records.append(rec(at(10), T.SURVEY_NPS, "n", value=nps))
    if csat is not None:
        records.append(rec(at(11), T.SURVEY_CSAT, "c", value=csat))
    risk = score(records, at(20), "A", POLICY)
    assert [r.detail for r in risk.reasons] == ([] if detail is None else [detail])
    assert risk.score == (0 if detail is None else 35)


def test_detractor_latest_response_wins() -> None:
    bad, good = rec(at(10), T.SURVEY_NPS, "n1", value=2), rec(at(12), T.SURVEY_NPS, "n2", value=9)
    assert score([signup(), bad, good], at(20), "A", POLICY).score == 0
    later_bad = rec(at(14), T.SURVEY_NPS, "n3", value=4)
    assert score([signup(), bad, good, later_bad], at(20), "A", POLICY).reasons[0].since_us == at(14)


def test_complaint_without_agent_reply_then_unresolved() -> None:
    opened = rec(at(3, 9), T.TICKET_OPENED, "o", "t-7", "complaint:billing")
    records = [signup(), opened]
    waiting = score(records, at(4, 9) - 1, "C", POLICY)
    assert (waiting.score, waiting.next_check_us) == (0, at(4, 9))  # 24h reply SLA
    late = score(records, at(4, 9), "C", POLICY)
    assert (late.score, late.since_us, late.next_check_us) == (35, at(4, 9), at(5, 9))  # then the 48h SLA
    assert late.reasons[0].detail == "complaint t-7 (billing) no agent reply since 2025-01-04T09:00Z, SLA 24h"
    # an agent replied after 2 hours: only the resolution SLA is left
    replied = [*records, rec(at(3, 11), T.TICKET_REPLIED, "r", "t-7", "agent")]
    assert score(replied, at(4, 12), "C", POLICY).score == 0
    unresolved = score(replied, at(6), "C", POLICY)
    assert (unresolved.score, unresolved.since_us) == (35, at(5, 9))
    assert unresolved.reasons[0].detail == "complaint t-7 (billing) unresolved since 2025-01-04T09:00Z, SLA 48h"


def test_complaint_resolution_reopening_and_other_kinds() -> None:
    opened = rec(at(3), T.TICKET_OPENED, "o", "t-7", "complaint:")
    resolved = rec(at(4), T.TICKET_RESOLVED, "s", "t-7")
    assert score([signup(), opened, resolved], at(10), "C", POLICY).score == 0  # resolved without a reply: fine
    reopened = [signup(), opened, resolved, rec(at(6), T.TICKET_REOPENED, "ro", "t-7")]
    waiting = score(reopened, at(7), "C", POLICY)
    assert (waiting.score, waiting.next_check_us) == (0, at(8))  # 48h from the reopening
    late = score(reopened, at(9), "C", POLICY)
    assert (late.score, late.reasons[0].detail) == (35, "complaint t-7 unresolved since 2025-01-07T00:00Z, SLA 48h")
    # a customer's own reply does not answer the complaint; a request is no complaint
    own_reply = [signup(), opened, rec(at(3, 1), T.TICKET_REPLIED, "r", "t-7", "customer")]
    assert score(own_reply, at(4), "C", POLICY).score == 35
    request = [signup(), rec(at(3), T.TICKET_OPENED, "o", "t-8", "request:billing")]
    assert score(request, at(10), "C", POLICY).score == 0


def test_several_complaints_name_the_first_one_late() -> None:
    records = [signup(), rec(at(3), T.TICKET_OPENED, "o1", "t-1", "complaint:delivery"),
               rec(at(2), T.TICKET_OPENED, "o2", "t-2", "complaint:billing")]
    records.sort(key=Rec.sort_key)
    risk = score(records, at(10), "C", POLICY)
    assert codes(risk) == [(COMPLAINT, 35)]  # once per customer, however many tickets
    assert risk.reasons[0].detail == "complaint t-2 (billing) no agent reply since 2025-01-03T00:00Z, SLA 24h " \
                                     "(+1 more past SLA)"
    assert risk.since_us == at(3)


def test_purchase_frequency_falling() -> None:
    records = [signup(), order(0, "a"), order(7, "b"), order(14, "c")]  # gaps 7d, 7d: due 14d after the last
    before = score(records, at(28) - 1, "B", POLICY)
    assert (before.score, before.next_check_us) == (0, at(28))
    risk = score(records, at(28), "B", POLICY)
    assert (codes(risk), risk.at_risk, risk.since_us) == ([(FREQUENCY, 25)], False, None)  # 25 < 30 alone
    assert risk.reasons[0].detail == "last order 2025-01-15; 3 orders with a median gap of 7d, none for 14d since"
    assert risk.next_check_us == at(74)  # quiet 60 days after the last order
    assert score(records[:3], at(100), "A", POLICY).reasons[0].code == QUIET  # 2 orders: no rhythm to fall from


def test_purchase_frequency_median_of_an_even_number_of_gaps() -> None:
    # gaps 4d 6d 10d 2d: median (4d + 6d) / 2 = 5d; factor 2.5: due 12.5d after the last order (day 22)
    records = [signup(), order(0, "a"), order(4, "b"), order(10, "c"), order(20, "d"), order(22, "e")]
    policy = RiskPolicy(frequency_factor=2.5)
    assert score(records, at(34.5) - 1, "A", policy).next_check_us == at(34.5)
    risk = score(records, at(34.5), "A", policy)
    assert (codes(risk), risk.reasons[0].since_us) == ([(FREQUENCY, 25)], at(34.5))


def test_orders_at_one_instant_set_no_rhythm() -> None:
    records = [signup(), order(1, "a"), order(1, "b"), order(1, "c")]
    assert score(records, at(30), "A", POLICY).score == 0


def test_refunds() -> None:
    refunds = [rec(at(5), T.ORDER_REFUNDED, "r1", "a", value=1), rec(at(8), T.ORDER_RETURNED, "r2", "b"),
               rec(at(9), T.ORDER_REFUNDED, "r3", "b", value=1)]  # order b refunded and returned: one order
    records = [signup(), order(1, "a"), order(2, "b"), *refunds]
    risk = score(records, at(10), "C", POLICY)
    assert (codes(risk), risk.reasons[0].since_us) == ([(REFUNDS, 20)], at(9))
    assert risk.reasons[0].detail == "2 orders refunded or returned within 90d"
    # below 2 orders once order a's refund (day 5) leaves the 90-day lookback; quiet comes first
    assert risk.next_check_us == at(69)
    assert score(records, at(95), "A", POLICY).reasons[-1].code != REFUNDS
    assert score(records[:-2], at(10), "C", POLICY).score == 0  # only one order refunded
    assert score(records, at(10), "C", RiskPolicy(refunds_min=0)).score == 0  # reason off


def test_refunds_next_check_when_more_than_needed() -> None:
    records = [signup(), *(rec(at(d), T.ORDER_REFUNDED, f"r{d}", f"o{d}", value=1) for d in (5, 8, 9))]
    risk = score(records, at(10), "C", RiskPolicy(quiet_after_us=400 * DAY_US))
    # 3 orders, 2 needed: the detail's count changes when day 5 expires, the reason goes when day 8 does
    assert risk.next_check_us == at(95)
    quiet_later = RiskPolicy(quiet_after_us=400 * DAY_US)
    later = score(records, at(95), "C", quiet_later)
    assert codes(later) == [(REFUNDS, 20)]
    assert later.reasons[0].detail.startswith("2 orders")
    assert later.next_check_us == at(98)
    assert codes(score(records, at(98) - 1, "C", quiet_later)) == [(REFUNDS, 20)]
    assert score(records, at(98), "C", quiet_later).reasons == ()


@pytest.mark.parametrize(("cls", "weight", "at_risk"), [("A", 40, True), ("B", 20, False), ("C", 10, False),
                                                        (None, 10, False)])
def test_gone_quiet_weighs_by_abc_class(cls: str | None, weight: int, at_risk: bool) -> None:
    records = [signup(), order(3, "a"), rec(at(5), T.TICKET_REPLIED, "agent", "t", "agent"),
               rec(at(6), T.TICKET_RESOLVED, "res", "t")]  # the agent's doing, not the customer's
    assert score(records, at(63) - 1, cls, POLICY).next_check_us == at(63)
    risk = score(records, at(63), cls, POLICY)
    assert (codes(risk), risk.at_risk) == ([(QUIET, weight)], at_risk)
    assert risk.reasons[0].detail == f"no activity since 2025-01-04 ({cls or 'unranked'} customer)"
    assert risk.since_us == (at(63) if at_risk else None)
    assert risk.next_check_us is None  # nothing left that time could change


def test_a_customer_reply_is_activity() -> None:
    records = [signup(), rec(at(2), T.TICKET_OPENED, "o", "t", "question:"),
               rec(at(3), T.TICKET_REPLIED, "r", "t", "agent"), rec(at(10), T.TICKET_REPLIED, "c", "t", "customer")]
    assert score(records, at(62), "A", POLICY).score == 0
    assert score(records, at(70), "A", POLICY).score == 40


# -- putting reasons together --------------------------------------------------------------------


def test_since_is_when_the_reasons_first_added_up() -> None:
    # B customer: frequency (25, due day 28) + quiet (20, due day 74): at risk since day 74 only
    records = [signup(), order(0, "a"), order(7, "b"), order(14, "c")]
    risk = score(records, at(80), "B", POLICY)
    assert (risk.score, risk.since_us) == (45, at(74))
    assert codes(risk) == [(FREQUENCY, 25), (QUIET, 20)]
    # a detractor response on day 20 alone is enough: since day 20
    surveyed = [*records, rec(at(20), T.SURVEY_NPS, "n", value=1)]
    assert score(surveyed, at(85), "B", POLICY).since_us == at(20)


def test_score_is_capped_at_100_and_zero_weights_switch_reasons_off() -> None:
    records = [signup(), order(0, "a"), order(7, "b"), order(14, "c"), rec(at(15), T.SURVEY_NPS, "n", value=0),
               rec(at(15), T.TICKET_OPENED, "o", "t", "complaint:billing"),
               rec(at(16), T.ORDER_REFUNDED, "r1", "a", value=1), rec(at(16), T.ORDER_REFUNDED, "r2", "b", value=1)]
    risk = score(records, at(80), "A", POLICY)
    assert sum(r.weight for r in risk.reasons) == 155
    assert risk.score == 100
    assert [r.code for r in risk.reasons] == [QUIET, COMPLAINT, DETRACTOR, FREQUENCY, REFUNDS]
    quieter = RiskPolicy(weights={**POLICY.weights, QUIET + "_a": 0, DETRACTOR: 0})
    assert codes(score(records, at(80), "A", quieter)) == [(COMPLAINT, 35), (FREQUENCY, 25), (REFUNDS, 20)]
    assert score(records, at(80), "A", RiskPolicy(threshold=101)).at_risk is False


# -- properties -------------------------------------------------------------------------------------

TYPES = [T.SIGNED_UP, T.CHURNED, T.REACTIVATED, T.UPDATED, T.ORDER_PLACED, T.ORDER_REFUNDED, T.ORDER_RETURNED,
         T.TICKET_OPENED, T.TICKET_REPLIED, T.TICKET_RESOLVED, T.TICKET_REOPENED, T.SURVEY_NPS, T.SURVEY_CSAT,
         T.FEEDBACK_RECEIVED, T.FEEDBACK_RESPONDED]


@st.composite
def histories(draw: st.DrawFn) -> list[Rec]:
    n = draw(st.integers(1, 25))
    out = [rec(at(0), T.SIGNED_UP, "signup")]
    for i in range(n):
        t = at(0) + draw(st.integers(0, 200 * DAY_US // HOUR_US)) * HOUR_US
        type_ = draw(st.sampled_from(TYPES))
        ref = draw(st.sampled_from(["a", "b", "c"]))
        text = {T.TICKET_OPENED: draw(st.sampled_from(["complaint:billing", "request:"])),
                T.TICKET_REPLIED: draw(st.sampled_from(["agent", "customer"]))}.get(type_)
        value = draw(st.integers(0, 10)) if type_ in (T.SURVEY_NPS, T.SURVEY_CSAT) else 1
        out.append(rec(t, type_, f"e{i}", ref, text, value))
    return sorted(out, key=Rec.sort_key)


@settings(max_examples=150, deadline=None)
@given(histories(), st.integers(0, 300), st.sampled_from(["A", "B", "C", None]), st.randoms(use_true_random=False))
def test_arrival_order_and_redeliveries_change_nothing(records: list[Rec], day: int, cls: str | None,
                                                       rnd: random.Random) -> None:
    processor = Processor(Settings(allowed_lateness="3650d", history="3650d").facts)
    arrivals = records + rnd.sample(records, k=len(records) // 2)  # some delivered twice
    rnd.shuffle(arrivals)
    state: bytes | None = None
    for i in range(0, len(arrivals), 3):  # in batches, as the apply stage hands them over
        update = processor.apply_records(state, arrivals[i:i + 3])
        state = update.state or state
    stored = decode_state(state).records
    assert stored == records
    assert score(stored, at(day), cls, POLICY) == score(records, at(day), cls, POLICY)


@settings(max_examples=200, deadline=None)
@given(histories(), st.integers(0, 300 * 24), st.sampled_from(["A", "B", "C", None]))
def test_nothing_changes_before_next_check(records: list[Rec], hour: int, cls: str | None) -> None:
    now = at(0, hour)
    risk = score(records, now, cls, POLICY)
    if risk.next_check_us is None:
        assert score(records, now + 1000 * DAY_US, cls, POLICY) == risk
        return
    assert risk.next_check_us > now
    assert score(records, risk.next_check_us - 1, cls, POLICY) == risk
    assert score(records, (now + risk.next_check_us) // 2, cls, POLICY) == risk
