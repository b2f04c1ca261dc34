"""The KPI store: every key's state and the fact index built from them (no Faust, no Kafka).

Each worker keeps one store fed with *every* partition's changelog, so any worker answers a KPI
query for everything and the gauges of a segment can be exported by whichever worker owns it.
"""

from __future__ import annotations

from typing import Any

from metrics import facts as F
from metrics.abc import AbcSummary, classify, summarize
from metrics.facts import Context, derive, diff
from metrics.index import FactIndex, build
from metrics.kpis import all_kpis
from metrics.periods import Period
from metrics.records import CustomerState, T, decode_state
from metrics.segments import ALL

REP_PREFIX = b"rep:"


class KpiStore:
    """States by key, and the facts they imply; :meth:`replace` is the only way to change them."""

    def __init__(self, ctx: Context, abc_thresholds: tuple[float, float] = (0.8, 0.95)) -> None:
        self.ctx = ctx
        self.abc_thresholds = abc_thresholds
        self.states: dict[bytes, CustomerState] = {}
        self.index = FactIndex()
        self.newest_us: int | None = None
        self.updates = 0

    def replace(self, key: bytes, raw: bytes | None) -> None:
        """Set ``key`` to the stored state ``raw`` (``None`` deletes it); idempotent."""
        old = self.states.get(key)
        new = decode_state(raw) if raw is not None else None
        before = derive(old.records, self.ctx).facts if old else []
        after = derive(new.records, self.ctx).facts if new else []
        removed, added = diff(before, after)
        if removed or added:
            self.index.apply(removed, added)
        if new is None:
            self.states.pop(key, None)
        else:
            self.states[key] = new
            if new.newest_us is not None and (self.newest_us is None or new.newest_us > self.newest_us):
                self.newest_us = new.newest_us
        self.updates += 1

    def customers(self) -> int:
        return sum(1 for k in self.states if not k.startswith(REP_PREFIX))

    # -- ABC -------------------------------------------------------------------------------------

    def clv(self, at_us: int) -> dict[bytes, int]:
        """Historical CLV (net revenue in micro-units before ``at_us``) of every customer known then.

        Known: signed up or ordered before ``at_us``; a key that only ever sent, say, a stray churn
        is not a customer to rank.
        """
        out: dict[bytes, int] = {}
        for key, state in self.states.items():
            if key.startswith(REP_PREFIX):
                continue
            net, known = 0, False
            for r in state.records:
                if r.time_us >= at_us:
                    break
                if r.type is T.ORDER_PLACED:
                    net += r.value or 0
                    known = True
                elif r.type is T.ORDER_REFUNDED:
                    net -= r.value or 0
                elif r.type is T.SIGNED_UP:
                    known = True
            if known:
                out[key] = net
        return out

    def abc(self, at_us: int) -> tuple[dict[bytes, str], AbcSummary]:
        clv = self.clv(at_us)
        classes = classify(clv, self.abc_thresholds)
        return classes, summarize(clv, classes)

    def abc_view(self, cls: str, at_us: int) -> FactIndex:
        """The facts of the customers in ABC class ``cls`` as of ``at_us``, as segment ``abc:<cls>``."""
        classes, _ = self.abc(at_us)
        segment = f"abc:{cls}"
        facts = (
            (t, kind, segment, value)
            for key, c in classes.items() if c == cls
            for (t, kind, seg, value) in derive(self.states[key].records, self.ctx).facts if seg == ALL
        )
        return build(facts)

    # -- the KPI query ---------------------------------------------------------------------------

    def answer(self, period: Period, segment: str) -> dict[str, Any]:
        """Every KPI of ``segment`` in ``period``, with its inputs and the ABC classes at the end."""
        view = self.abc_view(segment.removeprefix("abc:"), period.end_us) if segment.startswith("abc:") \
            else self.index
        families = all_kpis(view, segment, period.start_us, period.end_us)
        kpis: dict[str, Any] = {}
        inputs: dict[str, Any] = {}
        for family in families.values():
            for name, value in family.items():
                if name == "inputs":
                    inputs.update(value)
                elif name == "clv_predicted_inputs":
                    inputs["clv_predicted"] = value
                else:
                    kpis[name] = value
        _, summary = self.abc(period.end_us)
        return {
            "period": {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()},
            "segment": segment,
            "kpis": kpis,
            "inputs": inputs,
            "abc": {
                "as_of": period.end.isoformat(),
                "thresholds": list(self.abc_thresholds),
                "customers": summary.customers,
                "clv_share": summary.clv_share,
                "total_clv": summary.total_clv,
            },
        }


def oldest_pending_reply(index: FactIndex) -> int | None:
    """Open time of the oldest ticket still waiting for a first agent reply, if any."""
    return index.first(ALL, F.PENDING_REPLY)

