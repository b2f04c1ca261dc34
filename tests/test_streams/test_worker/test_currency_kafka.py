"""A US shop through the real broker: ``currency = USD`` and USD orders count as they are, to the cent.

The built-in rates are rates *to EUR*; with another reporting currency they must not apply (they once
made every USD amount 8 % low). An order in a currency without a rate is dead-lettered, not guessed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fixtures import WorkerProcess, consume_all, converge, encode, event, isolated_env, produce, running_worker

pytestmark = pytest.mark.integration

AMOUNTS = ["19.99", "0.01", "1234.56", "7.10", "0.30", "99999.99", "42.42"]
REFUNDED = "7.10"


def _order(i: int, amount: str, currency: str = "USD") -> dict[str, Any]:
    return event("order.placed", f"2025-02-{i + 1:02d}T10:00:00Z",
                 {"customer_id": f"c{i % 3}", "order_id": f"o{i}", "amount": float(amount), "currency": currency})


@pytest.fixture(scope="module")
def worker(stack: str) -> Iterator[tuple[WorkerProcess, dict[str, str]]]:
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_CURRENCY="USD")
    with running_worker(env) as w:
        events = [
            *(event("customer.signed_up", "2025-01-05T10:00:00Z", {"customer_id": f"c{i}"}) for i in range(3)),
            *(_order(i, amount) for i, amount in enumerate(AMOUNTS)),
            event("order.refunded", "2025-03-01T10:00:00Z",
                  {"customer_id": "c0", "order_id": "o3", "amount": float(REFUNDED), "currency": "USD"}),
            _order(20, "10.00", "EUR"),  # no rate for EUR when the reporting currency is USD
        ]
        produce(stack, [(env["RETENTION_TOPIC_LIFECYCLE"], ev["data"]["customer_id"].encode(), encode(ev))
                        for ev in events])
        converge(lambda: w.metric_sum("retention_events_total") + w.metric_sum("retention_events_rejected_total"),
                 float(len(events)), "every event applied or dead-lettered")
        # applied is not yet visible: the KPI store follows the changelog a moment later
        converge(lambda: [Decimal(str(w.kpis("2025-Q1")["inputs"][k])) for k in ("order_amount", "refund_amount")],
                 [sum(Decimal(a) for a in AMOUNTS), Decimal(REFUNDED)], "the orders and the refund in the KPI store")
        yield w, env


def test_usd_net_revenue_is_the_plain_sum_of_the_usd_amounts(worker: tuple[WorkerProcess, dict[str, str]]) -> None:
    w, _ = worker
    answer = w.kpis("2025-Q1")
    expected = sum(Decimal(a) for a in AMOUNTS) - Decimal(REFUNDED)
    assert Decimal(str(answer["kpis"]["net_revenue"])) == expected
    assert Decimal(str(answer["inputs"]["order_amount"])) == sum(Decimal(a) for a in AMOUNTS)
    clv = Decimal(str(answer["kpis"]["clv_historical_mean"]))
    assert abs(clv - expected / 3) < Decimal("1e-9")


def test_usd_gauges_carry_the_reporting_currency(worker: tuple[WorkerProcess, dict[str, str]]) -> None:
    w, _ = worker
    text = w.fresh_metrics()
    line = next(x for x in text.splitlines()
                if x.startswith("retention_net_revenue{") and 'window="quarter"' in x and 'segment="all"' in x)
    assert 'currency="USD"' in line
    expected = sum(Decimal(a) for a in AMOUNTS) - Decimal(REFUNDED)
    assert Decimal(line.rsplit(" ", 1)[1]) == expected


def test_an_order_in_a_currency_without_a_rate_is_dead_lettered(worker: tuple[WorkerProcess, dict[str, str]],
                                                                  stack: str) -> None:
    _, env = worker
    letters = consume_all(stack, env["RETENTION_TOPIC_DLQ"], 1)
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["reason"] == "bad_currency"
    assert "'EUR' is not one of USD" in headers["message"]
