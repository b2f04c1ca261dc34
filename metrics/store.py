"""The KPI store: every key's fact set and the index built from them (no Faust, no Kafka).

Each worker keeps one store fed with *every* partition's changelog, so any worker answers a KPI
query for everything and the gauges of a segment can be exported by whichever worker owns it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.periods import Period
from metrics import facts as F
from metrics.abc_classes import CLASSES, AbcSummary, classify_arrays, summarize_arrays
from metrics.blob import Delta
from metrics.facts import Context, Fact
from metrics.index import FactIndex
from metrics.keytable import KeyTable
from metrics.kpis import all_kpis
from metrics.segments import ALL

ABC_REUSE_FACTOR = 10

REP_PREFIX = b"rep:"
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Abc:
    """Customers (by :func:`who_of`), their class index (0 = A, 1 = B, 2 = C) and the summary."""

    whos: I64
    classes: npt.NDArray[np.int8]
    summary: AbcSummary


def who_of(key: bytes) -> int:
    """A stable id in ``[1, 2**62]`` of a customer key (the index stores it with every fact, for ABC)."""
    return (int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 2) + 1


class KpiStore:
    """The facts of every key in one index, and per key a checksum of its fact set; :meth:`update` is
    the only way to change them."""

    def __init__(self, ctx: Context, abc_thresholds: tuple[float, float] = (0.8, 0.95)) -> None:
        self.ctx = ctx
        self.abc_thresholds = abc_thresholds
        self.index = FactIndex()
        self._checksums = KeyTable()  # per customer (who): checksum of the fact set in the index
        self._customers = 0
        self.newest_us: int | None = None
        self.updates = 0
        self._abc_cache: tuple[int, int, Abc] | None = None
        self._abc_live: tuple[float, float, int, int, Abc] | None = None  # began, took, at_us, version, result

    def update(self, key: bytes, delta: Delta, full: Callable[[], list[Fact]], newest_us: int | None = None) -> bool:
        """Move ``key``'s facts by ``delta``; ``full()`` is the key's whole new fact set, used for a key
        this store has not seen, and to repair one whose facts are not those ``delta`` starts from (an
        entry compacted away under the reader, say): then its facts are looked up in the index and
        replaced, and the call returns False.

        ``newest_us`` is the key's newest event time (``clock = event`` windows end after it).
        """
        who = who_of(key)
        held = self._checksums.get(who)
        consistent = True
        if held is None:
            self.index.add(full(), who, 1)
            if not key.startswith(REP_PREFIX):
                self._customers += 1
        elif held == delta.after:  # already there (a redelivered changelog entry)
            pass
        elif held == delta.before:
            self.index.add(delta.removed, who, -1)
            self.index.add(delta.added, who, 1)
        else:
            self.index.add(self.index.facts_of(who), who, -1)
            self.index.add(full(), who, 1)
            consistent = False
        self._checksums.put(who, delta.after)
        if newest_us is not None and (self.newest_us is None or newest_us > self.newest_us):
            self.newest_us = newest_us
        self.updates += 1
        return consistent

    def checksum_arrays(self) -> tuple[I64, I64]:
        return self._checksums.to_arrays()

    def load(self, index: FactIndex, checksums: KeyTable, customers: int, newest_us: int | None) -> None:
        """Replace everything (a checkpoint being restored)."""
        self.index, self._checksums, self._customers, self.newest_us = index, checksums, customers, newest_us
        self._abc_cache = self._abc_live = None
        self.updates += 1

    def customers(self) -> int:
        return self._customers

    def keys(self) -> int:
        return len(self._checksums)

    # -- ABC -------------------------------------------------------------------------------------

    def clv(self, at_us: int) -> tuple[I64, I64]:
        """Historical CLV (net revenue in micro-units before ``at_us``) of every customer known then,
        as ``(who, clv)`` arrays.

        Known: signed up or ordered before ``at_us``; a key that only ever sent, say, a stray churn
        is not a customer to rank. Customers are identified by :func:`who_of` their key.
        """
        parts = [self.index.by_customer(kind, at_us) for kind in (F.ORDER, F.REFUND, F.NEW)]
        whos = np.concatenate([who for who, _, _ in parts])
        if not len(whos):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        (_, order_w, order_v), (_, _, refund_v), (_, new_w, _) = parts
        money = np.concatenate([order_v, -refund_v, np.zeros(len(new_w), np.int64)])
        # A refund does not make a customer known; an order or a sign-up does.
        known_w = np.concatenate([order_w, np.zeros(len(refund_v), np.int64), new_w])
        uniq, inverse = np.unique(whos, return_inverse=True)
        net = np.zeros(len(uniq), np.int64)
        np.add.at(net, inverse, money)
        known = np.zeros(len(uniq), np.int64)
        np.add.at(known, inverse, known_w)
        keep = known > 0
        return uniq[keep], net[keep]

    def abc(self, at_us: int) -> Abc:
        """The ABC classes of the customers known at ``at_us``, cached until the index changes."""
        cached = self._abc_cache
        if cached is not None and cached[:2] == (at_us, self.index.version):
            return cached[2]
        whos, clv = self.clv(at_us)
        classes = classify_arrays(whos, clv, self.abc_thresholds)
        result = Abc(whos, classes, summarize_arrays(clv, classes))
        self._abc_cache = (at_us, self.index.version, result)
        return result

    def abc_live(self, at_us: int) -> tuple[int, Abc]:
        """:meth:`abc` for live gauges and scoring, with the index version it was computed at: a result
        is reused while it is younger than ten times what computing it took, even if facts arrived
        since, for an instant at most as far from the cached one. Ranking a million customers takes
        about a second, in one piece; recomputed on every gauge refresh it held the event loop that
        long every few seconds. With few customers it takes milliseconds and is as good as exact."""
        cached = self._abc_live
        if cached is not None:
            began, took, at, version, result = cached
            window = ABC_REUSE_FACTOR * took
            # Only as far as the clock moved meanwhile: an instant far from the cached one (a query of
            # the past, an event clock jumping ahead) gets its own ranking.
            if time.monotonic() - began < window and abs(at_us - at) <= window * 1_000_000:
                return version, result
        began, version = time.monotonic(), self.index.version
        result = self.abc(at_us)
        self._abc_live = (began, time.monotonic() - began, at_us, version, result)
        return version, result

    def abc_view(self, cls: str, at_us: int) -> FactIndex:
        """The facts of the customers in ABC class ``cls`` as of ``at_us``, as segment ``abc:<cls>``."""
        abc = self.abc(at_us)
        return self.index.subset(abc.whos[abc.classes == CLASSES.index(cls)], f"abc:{cls}", ALL)

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
        summary = self.abc(period.end_us).summary
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

