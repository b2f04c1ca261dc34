"""A seeded, stateful traffic generator for every event type of the contract (pure: no Kafka).

Each tick of a Poisson clock emits exactly one message: a follow-up that has come due (agent reply,
resolution, refund…) or else a fresh action drawn by weight. Keeping per-customer state means every
valid event makes sense (no order from a churned customer, no reply to a ticket never opened).
:meth:`Simulator.existing_base` signs up the customers and reps a business already has before a run.

The weights are per event, so a KPI's level depends on events per customer: at about 3 to 4 events per
customer and month (the demo's defaults) about 2 % of the customers churn a month and a quarter loses a
few of the reps (docs/demo.md has the ranges a test holds the demo to).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from core.slices import FactSettings, TopicSettings
from streams.producers.pool import Pool
from streams.producers.scenarios import SCENARIOS

Message = tuple[str, bytes, bytes]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN = 60_000_000
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_UNBOUNDED_CYCLE_US = _HOUR  # scenario cycle when a run has neither count nor end
_LAPSED_SHARE = 0.25  # of an existing base: customers who signed up and left again before the run
_FEEDBACK_ANSWERED = 0.3  # feedback items the business responds to
_KINDS = ("complaint", "request", "question", "incident")
_CATEGORIES = ("billing", "delivery", "product", "service", "account")
_TICKET_CHANNELS = ("email", "chat", "phone", "web")
_FEEDBACK_CHANNELS = ("review", "social", "email", "app-store")
_TEAMS = ("north", "south", "key-accounts")
_UNLISTED = ("legacy", "partner", "test")
_ENCODE = msgspec.json.Encoder().encode
# fmt: off
_ACTIONS = ("sign_up", "order", "ticket", "nps", "csat", "feedback", "update", "churn", "reactivate",
            "rep_join", "rep_leave")
# fmt: on


@dataclass(order=True)
class _FollowUp:
    due_us: int
    seq: int
    type: str = field(compare=False)
    data: dict[str, Any] = field(compare=False)


def topic_for(topics: TopicSettings, event_type: str) -> str:
    """The default topic for a type, via the configured names; unknown -> lifecycle."""
    prefix = event_type.split(".", 1)[0]
    return {
        "ticket": topics.support,
        "survey": topics.feedback,
        "feedback": topics.feedback,
        "rep": topics.team,
    }.get(prefix, topics.lifecycle)


def _pick(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: data[k] for k in keys if k in data}


def rfc3339(time_us: int) -> str:
    """Epoch microseconds as RFC 3339 UTC with a ``Z`` and millisecond precision."""
    dt = _EPOCH + timedelta(microseconds=time_us)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond // 1000:03d}Z"


class Simulator:
    """Customers, tickets, surveys, feedback and reps evolving under one named :class:`Scenario`.

    ``invalid_ratio`` mixes in malformed messages; ``delay_scale`` < 1 shortens follow-up delays (but a
    scheduled churn's, see :meth:`_later`) and ``pace`` < 1 makes sign-ups, plan changes, churn, win-backs,
    team changes and tickets rarer per event (a scenario's deviation still comes in full), so that fast live
    traffic is customers' activity without months' worth of comings and goings (``streams.producers.demo``).
    """

    def __init__(
        self,
        facts: FactSettings,
        topics: TopicSettings,
        seed: int,
        scenario: str = "steady",
        customers: int = 1000,
        *,
        invalid_ratio: float = 0.0,
        delay_scale: float = 1.0,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        if customers < 1 or not 0.0 <= invalid_ratio <= 1.0 or delay_scale <= 0:
            raise ValueError("customers must be >= 1, invalid_ratio 0..1 and delay_scale > 0")
        self.facts, self.topics, self.seed, self.scenario = facts, topics, seed, SCENARIOS[scenario]
        self.target, self.invalid_ratio, self.delay_scale = customers, invalid_ratio, delay_scale
        self.pace = 1.0
        self.rng = random.Random(seed)
        self.active, self.churned, self.reps = Pool(), Pool(), Pool()
        self.rep_target = max(3, customers // 100)
        self.segments: dict[str, dict[str, str]] = {}
        self.pending: list[_FollowUp] = []
        self.serial = itertools.count()  # ids of customers, orders, tickets…
        self.emitted = itertools.count()  # event ids: sim-<seed>-0, -1, … in emission order
        # the reporting currency first (most orders), then the others the settings accept
        self.currencies = [facts.currency, *(c for c in facts.rates if c != facts.currency)]
        # Same order as the weights of _weights().
        self._actions: list[Callable[[], tuple[str, dict[str, Any]] | None]] = [
            getattr(self, "_" + name) for name in _ACTIONS
        ]
        self._anomaly = False

    def events(
        self, start_us: int, count: int | None = None, end_us: int | None = None, *, rate: float = 10.0
    ) -> Iterator[Message]:
        """Messages with event times from ``start_us``, ``rate`` per second on average, until count/end."""
        if rate <= 0:
            raise ValueError("rate must be > 0")
        now, n = start_us, 0
        while (count is None or n < count) and (end_us is None or now < end_us):
            if count is not None:
                progress = n / count
            elif end_us is not None:
                progress = (now - start_us) / max(1, end_us - start_us)
            else:
                progress = (now - start_us) % _UNBOUNDED_CYCLE_US / _UNBOUNDED_CYCLE_US
            yield self.emit(now, progress)
            n += 1
            now += max(1, round(self.rng.expovariate(rate) * 1_000_000))

    def existing_base(self, start_us: int, end_us: int) -> Iterator[Message]:
        """The customers and reps there before a run, signing up at random times in ``[start_us, end_us)``:
        ``customers`` who stay, a quarter as many again who leave before ``end_us`` (win-back's pool),
        and the sales team. Then run :meth:`events` from ``end_us``."""
        if end_us - start_us < 2:
            raise ValueError("the base needs start_us < end_us - 1")
        stay = self.target
        joins = stay + round(stay * _LAPSED_SHARE)
        at = [(self.rng.randrange(start_us, end_us - 1), n, "") for n in range(-self.rep_target, joins)]
        heapq.heapify(at)
        while at:
            time_us, n, leaver = heapq.heappop(at)
            if n < 0:
                yield self._message(time_us, *self._rep_join())
            elif leaver:
                yield self._message(time_us, *self._churn(leaver))
            else:
                event_type, data = self._sign_up()
                if n >= stay:
                    heapq.heappush(at, (self.rng.randrange(time_us + 1, end_us), n, data["customer_id"]))
                yield self._message(time_us, event_type, data)

    def speed_up(self, now_us: int, factor: float) -> None:
        """Follow-ups come ``factor`` times sooner from ``now_us`` on, the ones already pending too."""
        if factor <= 0:
            raise ValueError("factor must be > 0")
        self.delay_scale /= factor
        for due in self.pending:
            if not due.type.startswith("customer."):  # lifecycle keeps its pace per day (see _later)
                due.due_us = now_us + max(0, round((due.due_us - now_us) / factor))
        heapq.heapify(self.pending)

    def emit(self, time_us: int, progress: float = 0.0) -> Message:
        """The next message, stamped ``time_us``; ``progress`` (0..1) places it in the scenario window."""
        low, high = self.scenario.window
        self._anomaly = low <= progress < high
        if self.invalid_ratio and self.rng.random() < self.invalid_ratio:
            return self._invalid(time_us)
        while self.pending and self.pending[0].due_us <= time_us:
            due = heapq.heappop(self.pending)
            if due.type == "customer.churned":  # a young customer's churn (cohort-decay), if still a customer
                if due.data["customer_id"] in self.active:
                    return self._message(time_us, *self._churn(due.data["customer_id"]))
            elif self._still_sensible(due):
                return self._message(time_us, due.type, due.data)
        while True:
            picked = self.rng.choices(self._actions, self._weights())[0]()
            if picked is not None:
                return self._message(time_us, *picked)

    def _message(self, time_us: int, event_type: str, data: dict[str, Any]) -> Message:
        self._apply_follow_ups(time_us, event_type, data)
        key = data.get("customer_id") or data["rep_id"]
        envelope = self._envelope(time_us, event_type, data)
        return topic_for(self.topics, event_type), key.encode(), _ENCODE(envelope)

    def _envelope(self, time_us: int, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        n = next(self.emitted)
        return dict(specversion="1.0", id=f"sim-{self.seed}-{n}", source="simulator", type=event_type,
                    time=rfc3339(time_us), data=data)  # fmt: skip

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{self.seed}-{next(self.serial)}"

    def _later(self, now_us: int, median_us: float, event_type: str, data: dict[str, Any]) -> None:
        # Log-normal delays: most replies come within the median, a long tail takes many times longer.
        # Lifecycle events keep the history's pace per day, as sign-ups and churn do (``pace``).
        scale = 1.0 if event_type.startswith("customer.") else self.delay_scale
        delay = median_us * scale * math.exp(self.rng.gauss(0.0, 0.8))
        due = now_us + max(1, int(delay))
        heapq.heappush(self.pending, _FollowUp(due, next(self.serial), event_type, data))

    def _still_sensible(self, due: _FollowUp) -> bool:
        # Agents still answer and refunds still go out after a churn; the customer no longer speaks up.
        speaks = due.type.startswith("survey.") or due.data.get("author") == "customer"
        return not speaks or due.data["customer_id"] in self.active

    def _weights(self) -> list[float]:
        short = max(0.0, 1.0 - len(self.active) / self.target)
        pace = self.pace  # a scenario's extra complaints and churn below come on top of it
        complaint = pace + (self.scenario.complaint_factor - 1 if self._anomaly else 0.0)
        churn = pace + (self.scenario.churn_factor - 1 if self._anomaly else 0.0)
        survey = self.scenario.survey_factor if self._anomaly else 1.0
        has_active = 1.0 if self.active else 0.0
        # In _ACTIONS order; sign-ups fill the population up to the target size, reps likewise. Churn,
        # win-back and the team change slowly: under 1 % of events end a customer, 0.01 % a rep.
        # fmt: off
        return [(0.15 + 30.0 * short) * pace, 8.0 * has_active, (1.6 * pace + 0.4 * complaint) * has_active,
                survey * has_active, 0.3 * survey * has_active, 0.6 * has_active, 0.3 * pace * has_active,
                0.15 * churn * has_active,
                0.05 * pace if self.churned else 0.0,
                (0.003 + 0.5 * max(0.0, 1.0 - len(self.reps) / self.rep_target)) * pace,
                0.003 * pace if len(self.reps) > 1 else 0.0]
        # fmt: on

    def _sign_up(self) -> tuple[str, dict[str, Any]]:
        cid = self._id("c")
        segment = {dim: self._segment_value(values) for dim, values in self.facts.segments.items()}
        self.segments[cid] = segment
        self.active.add(cid)
        data: dict[str, Any] = {"customer_id": cid}
        if self.rng.random() > 0.02:  # a few upstream systems send no segment at all
            data["segment"] = dict(segment)
        return "customer.signed_up", data

    def _segment_value(self, values: list[str]) -> str:
        if self.rng.random() < 0.01:
            unlisted = [v for v in _UNLISTED if v not in values]
            if unlisted:
                return self.rng.choice(unlisted)
        # Earlier values (free, eu…) are the common ones: weight 1/(i+1).
        return self.rng.choices(values, [1 / (i + 1) for i in range(len(values))])[0]

    def _order(self) -> tuple[str, dict[str, Any]]:
        cid = self.active.choice(self.rng)
        plan = self.segments[cid].get("plan", "")
        scale = {"free": 20.0, "basic": 45.0, "pro": 120.0, "enterprise": 600.0}.get(plan, 60.0)
        currency = self.currencies[0]
        if len(self.currencies) > 1 and self.rng.random() < 0.15:
            currency = self.rng.choice(self.currencies[1:])
        amount = round(scale * math.exp(self.rng.gauss(0.0, 0.6)), 2)
        return "order.placed", dict(customer_id=cid, order_id=self._id("o"), amount=amount, currency=currency)

    def _ticket(self) -> tuple[str, dict[str, Any]]:
        surge = self._anomaly and self.scenario.complaint_factor > 1
        weights = [0.25 * (self.scenario.complaint_factor if surge else 1.0), 0.35, 0.3, 0.1]
        kind = self.rng.choices(_KINDS, weights)[0]
        category = self.rng.choice(_CATEGORIES)
        if surge and kind == "complaint" and self.scenario.complaint_category and self.rng.random() < 0.7:
            category = self.scenario.complaint_category
        channel = self.rng.choice(_TICKET_CHANNELS)
        cid = self.active.choice(self.rng)
        return "ticket.opened", dict(
            customer_id=cid, ticket_id=self._id("t"), kind=kind, category=category, channel=channel
        )

    def _nps(self) -> tuple[str, dict[str, Any]]:
        detractors = self.scenario.detractor_share if self._anomaly else SCENARIOS["steady"].detractor_share
        roll = self.rng.random()
        if roll < detractors:
            score = self.rng.choices(range(7), [1, 1, 1, 2, 3, 5, 6])[0]
        else:
            score = self.rng.choice((7, 8, 8, 9, 9, 10, 10)) if roll < 0.97 else 8
        return "survey.nps", {"customer_id": self.active.choice(self.rng), "score": score}

    def _csat(self, ticket: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        good = self.scenario.csat_good_share if self._anomaly else SCENARIOS["steady"].csat_good_share
        score = self.rng.choice((4, 5)) if self.rng.random() < good else self.rng.choice((1, 2, 3, 3))
        if ticket is None:
            return "survey.csat", {"customer_id": self.active.choice(self.rng), "score": score}
        cid, tid = ticket["customer_id"], ticket["ticket_id"]
        return "survey.csat", dict(customer_id=cid, score=score, ticket_id=tid)

    def _feedback(self) -> tuple[str, dict[str, Any]]:
        cid, channel = self.active.choice(self.rng), self.rng.choice(_FEEDBACK_CHANNELS)
        rating, fid = float(self.rng.randint(1, 5)), self._id("f")
        return "feedback.received", dict(customer_id=cid, feedback_id=fid, channel=channel, rating=rating)

    def _update(self) -> tuple[str, dict[str, Any]] | None:
        cid = self.active.choice(self.rng)
        dims = self.facts.segments
        dim = "plan" if "plan" in dims else self.rng.choice(list(dims))
        choices = [v for v in dims[dim] if v != self.segments[cid].get(dim)]
        if not choices:
            return None
        self.segments[cid][dim] = value = self.rng.choice(choices)
        return "customer.updated", {"customer_id": cid, "segment": {dim: value}}

    def _churn(self, cid: str = "") -> tuple[str, dict[str, Any]]:
        cid = cid or self.active.choice(self.rng)
        self.active.remove(cid)
        self.churned.add(cid)
        reasons = self.facts.churn_reasons
        reason = self.scenario.churn_reason
        if not (self._anomaly and reason in reasons and self.rng.random() < 0.6):
            reason = self.rng.choice(reasons) if reasons else None
        return "customer.churned", {"customer_id": cid} | ({"reason": reason} if reason else {})

    def _reactivate(self) -> tuple[str, dict[str, Any]]:
        cid = self.churned.choice(self.rng)
        self.churned.remove(cid)
        self.active.add(cid)
        return "customer.reactivated", {"customer_id": cid}

    def _rep_join(self) -> tuple[str, dict[str, Any]]:
        rid = self._id("r")
        self.reps.add(rid)
        return "rep.joined", {"rep_id": rid, "team": self.rng.choice(_TEAMS)}

    def _rep_leave(self) -> tuple[str, dict[str, Any]]:
        rid = self.reps.choice(self.rng)
        self.reps.remove(rid)
        return "rep.left", {"rep_id": rid}

    # -- follow-ups: what an emitted event sets in motion ----------------------------------------

    def _apply_follow_ups(self, now: int, event_type: str, data: dict[str, Any]) -> None:
        roll = self.rng.random()
        ticket = _pick(data, "customer_id", "ticket_id")
        if event_type == "order.placed":
            self._after_order(now, roll, data)
        elif event_type == "customer.signed_up" and self._anomaly and roll < self.scenario.young_churn:
            self._later(now, 12 * _DAY, "customer.churned", {"customer_id": data["customer_id"]})
        elif event_type == "order.returned" and "amount" in data and roll < 0.8:
            # A return without an amount is an exchange: no money goes back.
            self._later(now, 1 * _DAY, "order.refunded", dict(data))
        elif event_type in ("ticket.opened", "ticket.reopened"):
            slow = self.scenario.reply_delay_factor if self._anomaly else 1.0
            self._later(now, 20 * _MIN * slow, "ticket.replied", ticket | {"author": "agent"})
        elif event_type == "ticket.replied":
            self._after_reply(now, roll, ticket, data["author"])
        elif event_type == "ticket.resolved":
            self._after_resolve(now, roll, ticket)
        elif event_type == "feedback.received" and roll < _FEEDBACK_ANSWERED:
            self._later(now, 6 * _HOUR, "feedback.responded", _pick(data, "customer_id", "feedback_id"))

    def _after_order(self, now: int, roll: float, data: dict[str, Any]) -> None:
        base = {"customer_id": data["customer_id"], "order_id": data["order_id"]}
        money = {"amount": data["amount"], "currency": data["currency"]}
        if roll < 0.04:
            self._later(now, 3 * _DAY, "order.returned", base | (money if roll < 0.03 else {}))
        elif roll < 0.07:  # partial refund without a return (damaged goods, goodwill)
            money["amount"] = round(money["amount"] * self.rng.choice((0.2, 0.5, 1.0)), 2)
            self._later(now, 2 * _DAY, "order.refunded", base | money)

    def _after_reply(self, now: int, roll: float, ticket: dict[str, Any], author: str) -> None:
        if author == "customer":
            self._later(now, 40 * _MIN, "ticket.replied", ticket | {"author": "agent"})
        elif roll < 0.3:
            self._later(now, 2 * _HOUR, "ticket.replied", ticket | {"author": "customer"})
        else:
            self._later(now, 3 * _HOUR, "ticket.resolved", ticket)

    def _after_resolve(self, now: int, roll: float, ticket: dict[str, Any]) -> None:
        if roll < 0.07:
            self._later(now, 1 * _DAY, "ticket.reopened", ticket)
        elif roll < 0.45:
            self._later(now, 1 * _HOUR, *self._csat(ticket))

    # -- malformed messages for dead-letter demos ----------------------------------------------

    def _invalid(self, time_us: int) -> Message:
        cid = self.active.choice(self.rng) if self.active else f"c-{self.seed}-ghost"
        good = self._envelope(time_us, "survey.nps", {"customer_id": cid, "score": 7})
        order = {"customer_id": cid, "order_id": "o-1", "amount": 1, "currency": "XXX"}  # XXX: no currency
        flaws: list[dict[str, Any]] = [
            {"type": "customer.teleported"},
            {"data": {"score": 7}},  # customer_id missing
            {"time": good["time"][:19]},  # no offset
            {"data": {"customer_id": cid, "score": 11}},
            {"type": "order.placed", "data": order},
        ]
        flaw = self.rng.randrange(len(flaws) + 1)
        if flaw == len(flaws):
            return self.topics.lifecycle, cid.encode(), _ENCODE(good)[:-7]  # truncated JSON
        bad = good | flaws[flaw]
        return topic_for(self.topics, bad["type"]), cid.encode(), _ENCODE(bad)
