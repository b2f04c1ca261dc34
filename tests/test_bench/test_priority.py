"""The priority probe: the main thread's steps are timed while a GIL-holding thread runs beside it."""

from __future__ import annotations

from bench.priority import STEP_SLEEP_S, Steps, probe


def test_steps_are_timed_while_a_thread_holds_the_gil_beside_them() -> None:
    steps = probe(nice=1, hogs=0, seconds=0.3)
    assert steps.took == sorted(steps.took)
    assert len(steps.took) >= 10
    assert steps.took[0] >= STEP_SLEEP_S  # each step includes its sleep


def test_quantiles_and_stalls_of_sorted_steps() -> None:
    steps = Steps([0.002] * 98 + [0.15, 0.4])
    assert steps.at(0.5) == 0.002
    assert steps.at(0.99) == 0.4
    assert steps.at(1.0) == 0.4
    assert steps.stalls == 2
