"""The simulator's scenarios: how traffic deviates from normal in the middle of a run (churn spike,
NPS drop, complaint surge) or over all of it (cohort decay), for demos and for the alerts each one should fire."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """How traffic deviates from normal while the run's progress is inside ``window``."""

    description: str
    window: tuple[float, float] = (1 / 3, 2 / 3)
    churn_factor: float = 1.0
    churn_reason: str | None = None  # reason that dominates the extra churn, if configured
    detractor_share: float = 0.15
    csat_good_share: float = 0.8
    complaint_factor: float = 1.0
    complaint_category: str | None = None
    reply_delay_factor: float = 1.0
    survey_factor: float = 1.0  # NPS and CSAT responses: unhappy customers answer more surveys
    young_churn: float = 0.0  # share of the customers signing up inside the window who churn within about a month
    history: bool = False  # the demo's history runs under it too (a cohort's retention shows months later)


SCENARIOS: dict[str, Scenario] = {
    "steady": Scenario("normal traffic, no anomaly", window=(0.0, 0.0)),
    "churn-spike": Scenario(
        "churn x8 in the middle third, mostly to a competitor", churn_factor=8.0, churn_reason="competitor"
    ),
    "nps-drop": Scenario(
        "detractor share jumps to 60%, CSAT falls and surveys come three times as often in the middle third",
        detractor_share=0.6,
        csat_good_share=0.3,
        survey_factor=3.0,
    ),
    "complaint-surge": Scenario(
        "complaints x6 (mostly delivery) and slower replies in the middle third",
        complaint_factor=6.0,
        complaint_category="delivery",
        reply_delay_factor=3.0,
    ),
    "cohort-decay": Scenario(
        "newer cohorts retain worse: 45% of the customers signing up in the demo's history and live traffic "
        "churn within about a month",
        window=(0.0, 1.0),
        young_churn=0.45,
        history=True,
    ),
}
