"""What the demo command publishes (its defaults), for the tests that read its KPIs in process and the one
that pages through Kafka: the base, 90 days of history and 30 s of live traffic at a fixed instant."""

from __future__ import annotations

from core.settings import Settings
from streams.producers import demo
from streams.producers.simulate import Message, Simulator

NOW_US = 1_796_360_400_000_000  # 2026-12-04T05:00:00Z, early in a month as in the demo run
DAY_US = 86_400_000_000
CUSTOMERS, HISTORY, RATE, LIVE_S = 3000, 30_000, 200.0, 30  # the demo command's defaults
END_US = NOW_US + LIVE_S * 1_000_000


def demo_messages(scenario: str = "steady") -> list[Message]:
    """``(topic, key, value)`` as the demo command publishes them with ``--scenario``: in the live traffic,
    and in the history too if it shapes the history (cohort-decay). Topics are the default settings'."""
    settings = Settings()
    sim = Simulator(settings.facts, settings.topics, seed=7, customers=CUSTOMERS)
    messages = demo.history(sim, NOW_US, HISTORY, scenario)
    demo.go_live(sim, NOW_US, HISTORY, RATE, scenario)
    return messages + list(sim.events(start_us=NOW_US, end_us=END_US, rate=RATE))
