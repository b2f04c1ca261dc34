"""The alert loop inside a worker: evaluate the rules of the segments this worker owns, keep their
state in Redis, and deliver transitions to Alertmanager.

It runs shortly after KPI inputs change and at least every ``interval`` seconds, because rolling
windows slide without events. Only the owner of a segment (see :func:`metrics.gauges.owner`)
evaluates its rules, and the first page of a firing alert is claimed atomically in Redis, so two
workers page once; the state in Redis lets a restarted or new owner carry on without paging again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from alerts.catalog import Live
from alerts.cohort import cohort_plan
from alerts.delivery import Alert, AlertmanagerClient
from alerts.evaluate import Observation, observe, step
from alerts.rules import Rule
from alerts.state import AlertState, StateStore
from metrics.cohorts import REUSE_FACTOR
from metrics.exceptions import Unavailable
from metrics.planning import Runner, plan

log = logging.getLogger(__name__)
MIN_ENDS_AHEAD_S = 300.0
UTC = ZoneInfo("UTC")
PAUSE_FACTOR = 19  # alert passes after KPI changes: at most a twentieth of the event loop


@dataclass(frozen=True)
class Timing:
    """How often to evaluate and re-send (seconds)."""

    interval: float = 10.0
    resend: float = 60.0
    debounce: float = 1.0


def expand(selectors: Sequence[str], segments: Sequence[str]) -> list[str]:
    """The configured segments a rule's selectors (``all``, ``plan:pro``, ``plan:*``) match."""
    out: list[str] = []
    for sel in selectors:
        if sel.endswith(":*"):
            out.extend(s for s in segments if s.startswith(sel[:-1]))
        elif sel in segments:
            out.append(sel)
    return out


def render(template: str, obs: Observation) -> str:
    """Fill a summary/description template; an undefined value must not break the alert."""
    try:
        return template.format(**obs.context())
    except (TypeError, ValueError, KeyError):
        return f"{template} (value={obs.value}, baseline={obs.baseline}, samples={obs.samples})"


def to_alert(obs: Observation, starts_at: float, ends_at: float) -> Alert:
    r = obs.rule
    labels = {"alertname": r.name, "severity": r.severity, "kpi": r.kpi, "window": r.window,
              "segment": obs.segment, **r.labels}
    annotations = {"summary": render(r.summary, obs), "description": render(r.description, obs),
                   "runbook_url": r.runbook_url, "dashboard_url": r.dashboard_url}
    return Alert(labels=labels, annotations=annotations, starts_at=starts_at, ends_at=ends_at)


class AlertEngine:
    """Evaluates ``rules`` on the KPIs of the stores ``run`` reaches (the cluster's), for the segments
    ``owned()`` returns.

    ``updates()`` changes whenever this worker's KPI inputs change (then it looks again soon);
    ``now_us()`` is the instant windows end at."""

    def __init__(
        self,
        rules: list[Rule],
        run: Runner,
        *,
        updates: Callable[[], int],
        owned: Callable[[], list[str]],
        segments: list[str],
        now_us: Callable[[], Awaitable[int | None]],
        state: StateStore,
        client: AlertmanagerClient,
        timing: Timing = Timing(),
        live: Callable[[], Live | None] | None = None,
        tz: ZoneInfo = UTC,
        pinned: Runner | None = None,
    ) -> None:
        self.rules = rules
        self.run_plan = run
        self.run_pinned = pinned or run  # for cohort tables: no store stops writing while they are computed
        self.updates = updates
        self.owned = owned
        self.targets = {r.name: expand(r.segments, segments) for r in rules}
        self.now_us = now_us
        self.state = state
        self.client = client
        self.timing = timing
        self.live = live
        self.tz = tz  # where cohort periods (weeks, months, quarters) start
        self.evaluations = 0
        self._cohorts: tuple[float, float, list[Observation]] | None = None  # began, took, observations

    async def observe(self, end_us: int, segments: Callable[[str], bool], *, reuse: bool = False) -> list[Observation]:
        """What every rule sees on the segments ``segments`` accepts, for windows ending at ``end_us``, in rule
        order; with ``reuse``, cohort rules may be seen as they were a moment ago (:data:`REUSE_FACTOR`)."""
        live = self.live() if self.live is not None else None
        pairs = [(rule, segment) for rule in self.rules for segment in self.targets[rule.name] if segments(segment)]
        kpis = [(rule, segment) for rule, segment in pairs if rule.kind != "cohort"]
        seen = await self.run_plan(plan(lambda view: [observe(view, rule, seg, end_us, live) for rule, seg in kpis]))
        cohorts = [(rule, segment) for rule, segment in pairs if rule.kind == "cohort"]
        if cohorts:
            seen += await self._cohort_observations(cohorts, end_us, reuse)
        found = {(o.rule.name, o.segment): o for o in seen}
        return [found[rule.name, segment] for rule, segment in pairs]

    async def _cohort_observations(self, pairs: list[tuple[Rule, str]], end_us: int, reuse: bool) -> list[Observation]:
        cached = self._cohorts
        if reuse and cached is not None:
            began, took, seen = cached
            if [(o.rule, o.segment) for o in seen] == pairs and time.monotonic() - began < REUSE_FACTOR * took:
                return seen
        began = time.monotonic()
        seen = await self.run_pinned(cohort_plan(pairs, end_us, self.tz))
        if reuse:
            self._cohorts = (began, time.monotonic() - began, seen)
        return seen

    async def dry_run(self, end_us: int) -> list[Observation]:
        """What every rule sees on every configured segment for windows ending at ``end_us``
        (no state, no delivery): which rules would fire then, and why. Live KPIs are read as they are now."""
        return await self.observe(end_us, lambda segment: True)

    async def evaluate(self, now: float | None = None) -> list[Observation]:
        """One pass over every rule and owned segment; returns what was observed."""
        now = time.time() if now is None else now
        end = await self.now_us()
        if end is None:
            return []
        owned = set(self.owned())
        seen = await self.observe(end, owned.__contains__, reuse=True)
        for obs in seen:
            await self._advance(obs, now)
        self.evaluations += 1
        return seen

    async def _advance(self, obs: Observation, now: float) -> None:
        name, segment = obs.rule.name, obs.segment
        old = await self.state.get(name, segment)
        new, transition = step(old, obs, now)
        if transition == "firing":
            assert new.firing_since is not None
            ttl = int(obs.rule.keep_firing_seconds + 24 * 3600)
            if await self.state.claim_page(name, segment, new.firing_since, ttl):
                new = await self._send(obs, new, now)
            else:  # another worker paged for this very firing: only take over the re-sends
                new = replace(new, last_sent=now)
        elif new.firing_since is not None and (new.last_sent is None or now - new.last_sent >= self.timing.resend):
            new = await self._send(obs, new, now)
        elif transition == "resolved":
            starts = old.firing_since if old.firing_since is not None else now
            await self.client.send([to_alert(obs, starts, now)])
            log.info("alert %s{segment=%s} resolved", name, segment)
            new = replace(new, last_sent=now)
        if new != old:
            await self.state.put(name, segment, new)

    async def _send(self, obs: Observation, state: AlertState, now: float) -> AlertState:
        assert state.firing_since is not None
        # endsAt ahead by a few re-send intervals, and at least past a worker hand-over (consumer
        # session timeout plus rebalance), so only a monitor that is really gone lets it resolve.
        alert = to_alert(obs, state.firing_since, now + max(4 * self.timing.resend, MIN_ENDS_AHEAD_S))
        await self.client.send([alert])
        log.info("alert %s{segment=%s} firing (value %s)", obs.rule.name, obs.segment, obs.value)
        return replace(state, last_sent=now)

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate after KPI changes (debounced) and at least every ``timing.interval`` seconds."""
        last_eval, last_updates, took = 0.0, -1, 0.0
        while not stop.is_set():
            now = time.monotonic()
            changed = self.updates() != last_updates
            if changed or now - last_eval >= self.timing.interval:
                last_updates, last_eval = self.updates(), now
                try:
                    await self.evaluate()
                    await self.state.reconcile()
                except Unavailable as exc:  # a rebalance: no rule moves on a number that is not whole
                    log.info("alert evaluation skipped: %s", exc)
                except Exception:  # an evaluation bug must not stop alerting for the other rules next time
                    log.exception("alert evaluation failed")
                took = time.monotonic() - now
            # With live traffic the inputs change all the time: a pass holds the event loop (0.13 s with
            # 200,000 customers), so the next waits PAUSE_FACTOR times that; rules hold for minutes.
            with contextlib.suppress(TimeoutError):  # the timer: wake up to look again
                await asyncio.wait_for(stop.wait(), timeout=max(self.timing.debounce, PAUSE_FACTOR * took))
