"""What `retention-monitor demo` publishes (pure: the command sends it): an existing customer base, a
quarter of history, then live traffic.

The base signs up over the year before the history, so every window of the history has customers at
its start and every customer who orders has signed up. Live traffic is paced by the wall clock at a
rate thousands of times the history's. It is the customers' activity fast-forward (orders, surveys,
feedback, and the refunds and responses they set off, which come after as many events as in the
history, so within the run; so do the follow-ups the history left pending), while sign-ups, churn,
win-backs, plan and team changes and tickets keep the history's pace per day: 30 s add next to none of
them, instead of weeks' worth in one day that the 1-day alert rules would take for a churn spike and a
complaint surge. A scenario's deviation comes on top.
"""

from __future__ import annotations

from streams.producers.scenarios import SCENARIOS
from streams.producers.simulate import Message, Simulator

BASE_DAYS = 365
HISTORY_DAYS = 90
_DAY_US = 86_400_000_000


def history(sim: Simulator, now_us: int, events: int, scenario: str = "steady") -> list[Message]:
    """The base (signed up over the year before) and about ``events`` events of the last 90 days, under
    ``scenario`` if it shapes the history (cohort-decay: a cohort's retention shows only months later),
    else steady."""
    sim.scenario = SCENARIOS[scenario] if SCENARIOS[scenario].history else SCENARIOS["steady"]
    start = now_us - HISTORY_DAYS * _DAY_US
    base = list(sim.existing_base(start - BASE_DAYS * _DAY_US, start))
    rate = events / (HISTORY_DAYS * 86_400)
    return base + list(sim.events(start_us=start, end_us=now_us, rate=rate))


def go_live(sim: Simulator, now_us: int, history_events: int, live_rate: float, scenario: str = "steady") -> None:
    """Switch ``sim`` from the history, which ended at ``now_us``, to live traffic at ``live_rate`` events/s
    under ``scenario``: follow-ups (also those the history left pending) and the pace scaled alike."""
    sim.pace = history_events / (HISTORY_DAYS * 86_400) / live_rate
    sim.speed_up(now_us, 1 / sim.pace)
    sim.scenario = SCENARIOS[scenario]
