"""Random mixed streams of every domain (hypothesis), and the KPI answers two pipelines are compared on."""

from __future__ import annotations

from typing import Any

from fixtures import event
from hypothesis import strategies as st
from pure_pipeline import PurePipeline

CUSTOMERS = [f"k{i}" for i in range(5)]
DAYS = [f"2024-12-{d:02d}" for d in (1, 15, 31)] + [f"2025-{m:02d}-{d:02d}" for m in (1, 2, 3) for d in (1, 14, 28)]


@st.composite
def mixed_event(draw: st.DrawFn, i: int) -> dict[str, Any]:
    cid = draw(st.sampled_from(CUSTOMERS))
    time = f"{draw(st.sampled_from(DAYS))}T{draw(st.integers(0, 23)):02d}:00:00Z"
    ref = f"r{draw(st.integers(0, 2))}"
    kind = draw(st.sampled_from([
        "customer.signed_up", "customer.updated", "customer.churned", "customer.reactivated",
        "order.placed", "order.refunded", "order.returned", "ticket.opened", "ticket.replied",
        "ticket.resolved", "ticket.reopened", "survey.nps", "survey.csat", "feedback.received",
        "feedback.responded", "rep.joined", "rep.left",
    ]))
    data: dict[str, Any] = {"customer_id": cid}
    if kind in ("customer.signed_up", "customer.updated"):
        data["segment"] = {"plan": draw(st.sampled_from(["free", "pro", "weird"]))}
    elif kind == "customer.churned":
        data["reason"] = draw(st.sampled_from(["price", "service", "x"]))
    elif kind.startswith("order."):
        data |= {"order_id": ref, "amount": draw(st.sampled_from([0, 9.99, 20, 100.5])), "currency": "EUR"}
    elif kind.startswith("ticket."):
        data["ticket_id"] = ref
        if kind == "ticket.opened":
            data |= {"kind": draw(st.sampled_from(["complaint", "request"])), "category": "billing"}
        if kind == "ticket.replied":
            data["author"] = draw(st.sampled_from(["agent", "customer"]))
    elif kind == "survey.nps":
        data["score"] = draw(st.integers(0, 10))
    elif kind == "survey.csat":
        data["score"] = draw(st.integers(1, 5))
    elif kind.startswith("feedback."):
        data["feedback_id"] = ref
    elif kind.startswith("rep."):
        data = {"rep_id": draw(st.sampled_from(["r1", "r2"]))}
    return event(kind, time, data, id_=f"e{i}")


@st.composite
def mixed_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=0, max_value=45))
    return [draw(mixed_event(i)) for i in range(n)]


PERIODS = ["2025-Q1", "2025-01", "2024-12", "2025-W03", "2024-12-20T06:00:00Z/2025-02-14T12:00:00Z"]


def snapshot(p: PurePipeline) -> list[Any]:
    return [p.answer(period, s) for period in PERIODS for s in ("all", "plan:pro", "plan:other", "abc:A")]
