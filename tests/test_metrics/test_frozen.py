"""Long answers from copies of the facts: taken at one instant, kept only for the index they came from."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fixtures import event
from pure_pipeline import PurePipeline

from core.periods import to_us
from metrics.frozen import Frozen
from metrics.ranking import reads

AT = to_us(datetime(2025, 3, 1, tzinfo=UTC))


def shop() -> PurePipeline:
    return PurePipeline().send(
        event("customer.signed_up", "2025-01-02T10:00:00Z", {"customer_id": "c1"}, id_="e1"),
        event("order.placed", "2025-01-03T10:00:00Z",
              {"customer_id": "c1", "order_id": "o1", "amount": 20, "currency": "EUR"}, id_="e2"))


def test_a_frozen_copy_answers_only_the_reads_it_took() -> None:
    index = shop().store.index
    frozen = Frozen(index, reads(AT))
    assert frozen.scan("order", None, AT)[3].tolist() == index.scan("order", None, AT)[3].tolist()
    with pytest.raises(KeyError):
        frozen.scan("order", None, AT + 1)


def test_what_was_computed_for_an_older_index_is_not_kept() -> None:
    p = shop()
    question = ("clv_span", AT)
    prepared = p.store.prepare([question])
    assert prepared is not None
    answers = prepared()
    p.send(event("order.placed", "2025-01-04T10:00:00Z",
                 {"customer_id": "c1", "order_id": "o2", "amount": 5, "currency": "EUR"}, id_="e3"))
    p.store.remember(prepared.version, answers)
    assert p.store.prepare([question]) is not None  # still to compute: the facts changed meanwhile
    assert p.store.ask([question])[0][:2] == [1, 25_000_000]  # one customer, 25 EUR: the new order counts
    again = p.store.prepare([question])
    assert again is None  # answered now, and kept
