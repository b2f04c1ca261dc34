"""What `retention-monitor demo` publishes (pure: the command sends it): an existing customer base, a
quarter of history, then live traffic that runs the same business fast-forward.

The base signs up over the year before the history, so every window of the history has customers at
its start and every customer who orders has signed up. Live traffic is paced by the wall clock at a
rate thousands of times the history's, so it is that history fast-forwarded: its follow-ups (replies,
resolutions, responses, refunds) come after as many events as in the history, i.e. within the run,
instead of hours later when the demo has long printed its table.
"""

from __future__ import annotations

from streams.producers.simulate import Message, Simulator

BASE_DAYS = 365
HISTORY_DAYS = 90
_DAY_US = 86_400_000_000


def history(sim: Simulator, now_us: int, events: int) -> list[Message]:
    """The base (signed up over the year before) and about ``events`` events of the last 90 days."""
    start = now_us - HISTORY_DAYS * _DAY_US
    base = list(sim.existing_base(start - BASE_DAYS * _DAY_US, start))
    rate = events / (HISTORY_DAYS * 86_400)
    return base + list(sim.events(start_us=start, end_us=now_us, rate=rate))


def fast_forward(sim: Simulator, history_events: int, live_rate: float) -> None:
    """Shorten the follow-up delays by how much faster than the history live traffic runs."""
    sim.delay_scale = history_events / (HISTORY_DAYS * 86_400) / live_rate
