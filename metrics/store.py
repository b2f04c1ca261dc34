"""The KPI store of one worker: the facts of the customers of the partitions it owns (no Faust, no Kafka).

A worker applies the events of its partitions' customers and follows the same partitions' changelog
into this store, so it holds its share of the customers, not all of them. The store answers the
questions of :mod:`metrics.questions`; a KPI of the whole cluster is computed from the merged answers
of every worker's store (:mod:`metrics.planning`), exactly as from one store holding everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from retention_native import Followed

from core.periods import Period
from metrics import facts as F
from metrics import ranking
from metrics.abc_classes import CLASSES, AbcSummary, Cut, class_codes
from metrics.blob import Delta
from metrics.cohorts import reads as cohort_reads
from metrics.cohorts import table as cohort_table
from metrics.cohorts import tables as cohort_tables
from metrics.facts import Context
from metrics.frozen import Frozen, sorted_values
from metrics.index import FactIndex
from metrics.keytable import KeyTable, to_arrays
from metrics.kpis import all_kpis
from metrics.planning import Plan, abc, abc_label, parse_abc_label, plan, run
from metrics.questions import VALUE_QUESTIONS, Question
from metrics.questions import answer as answer_question
from metrics.segments import ALL

REP_PREFIX = b"rep:"
I64 = npt.NDArray[np.int64]
Key = tuple[Any, ...]  # of a memoized answer
Answers = list[tuple[Key, Any]]
Long = Callable[[], Callable[[], Answers]]  # takes the views now; returns the work to run on a thread
# Questions answered from the CLV ranking (see metrics.questions)
CLV_QUESTIONS = frozenset({"clv_span", "clv_histogram", "clv_values", "tie_histogram", "tie_values", "abc_summary"})


@dataclass(frozen=True)
class Deferred:
    """Long answers of one state of a store's index (``version``), from copies: call it on any thread,
    and hand what it returns to :meth:`KpiStore.remember`."""

    version: tuple[int, int]
    jobs: list[Callable[[], Answers]]

    def __call__(self) -> Answers:
        return [answer for job in self.jobs for answer in job()]


def cohort_key(name: str, segments: str | Sequence[str], bounds: Sequence[int], cohorts: int, until: int) -> Key:
    """The memo key of a cohort table question (one segment, or a list of them)."""
    return (name, segments if isinstance(segments, str) else tuple(segments), tuple(bounds), cohorts, until)


def who_of(key: bytes) -> int:
    """A stable id in ``[1, 2**62]`` of a customer key (the index stores it with every fact, for ABC)."""
    return (int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 2) + 1


class KpiStore:
    """The facts of the keys of some partitions in one index, and per partition a checksum per key
    of its fact set; :meth:`update` and :meth:`drop` are the only ways to change them."""

    def __init__(self, ctx: Context, abc_thresholds: tuple[float, float] = (0.8, 0.95)) -> None:
        self.ctx = ctx
        self.abc_thresholds = abc_thresholds
        self.index = FactIndex()
        self.checksums: dict[int, KeyTable] = {}  # per partition, per key (who): its fact set's checksum
        self.customer_counts: dict[int, int] = {}
        self.newest_by_partition: dict[int, int] = {}  # the newest event time of each partition's keys
        self.updates = 0
        self._cache: dict[Key, Any] = {}
        self._cache_version: tuple[int, int] = (0, -1)  # the index it holds answers of (object, version)

    # -- writes ----------------------------------------------------------------------------------

    def update(self, partition: int, key: bytes, delta: Delta, full: Callable[[], bytes],
               newest_us: int | None = None) -> bool:
        """Move ``key``'s facts by ``delta``; ``full()`` is the key's whole new fact set (a blob), used for a key
        this store has not seen, and to repair one whose facts are not those ``delta`` starts from (an
        entry compacted away under the reader, say): then its facts are looked up in the index and
        replaced, and the call returns False. ``newest_us``: the key's newest event time."""
        who = who_of(key)
        table = self._table(partition)
        held = table.get(who)
        consistent = True
        if held is None:
            self.index.add_blob(full(), who, 1)
            if not key.startswith(REP_PREFIX):
                self.customer_counts[partition] = self.customer_counts.get(partition, 0) + 1
        elif held == delta.after:  # already there (a redelivered changelog entry)
            pass
        elif held == delta.before:
            self.index.add_blob(delta.removed, who, -1)
            self.index.add_blob(delta.added, who, 1)
        else:
            self.index.add(self.index.facts_of(who), who, -1)
            self.index.add_blob(full(), who, 1)
            consistent = False
        table.put(who, delta.after)
        if newest_us is not None and newest_us > self.newest_by_partition.get(partition, newest_us - 1):
            self.newest_by_partition[partition] = newest_us
        self.updates += 1
        return consistent

    def follow(self, partition: int, entries: list[Any], start: int = 0) -> Followed:
        """:meth:`update` by the changelog entries (``streams.wire.Change`` records with ``key``, ``value``
        and ``timestamp``) of ``partition`` from ``entries[start]`` on, in one compiled call that stops at
        the first entry it leaves to :meth:`update`: a tombstone, a delta that does not chain, anything
        msgspec would decode otherwise or refuse (``Followed.next``)."""
        held = self.checksums.get(partition)
        table = KeyTable() if held is None else held
        followed = self.index.follow(table, entries, start)
        if held is None and followed.applied:  # a partition's table is made with its first key, as by update
            self.checksums[partition] = table
        if followed.customers:
            self.customer_counts[partition] = self.customer_counts.get(partition, 0) + followed.customers
        newest = followed.newest_us
        if newest is not None and newest > self.newest_by_partition.get(partition, newest - 1):
            self.newest_by_partition[partition] = newest
        self.updates += followed.applied
        return followed

    def _table(self, partition: int) -> KeyTable:
        table = self.checksums.get(partition)
        if table is None:  # not setdefault: that would build (and zero) a table on every update
            table = self.checksums[partition] = KeyTable()
        return table

    def drop(self, partitions: set[int]) -> None:
        """Forget the keys of ``partitions`` (given to another worker)."""
        self.commit_drop(partitions, self.without(partitions))

    def without(self, partitions: set[int]) -> FactIndex:
        """The index less the keys of ``partitions``, computed but not applied (it only reads the store,
        so it can run in a thread): :meth:`commit_drop` makes it the store's."""
        gone = [self.checksums[p] for p in partitions if p in self.checksums]
        if not gone:
            return self.index
        return self.index.without(np.concatenate([to_arrays(table)[0] for table in gone]))

    def commit_drop(self, partitions: set[int], index: FactIndex) -> None:
        for p in partitions:
            self.checksums.pop(p, None)
            self.customer_counts.pop(p, None)
            self.newest_by_partition.pop(p, None)
        if index is not self.index:
            self.index = index
            self.updates += 1

    def load(self, index: FactIndex, checksums: dict[int, KeyTable], customers: dict[int, int],
             newest: dict[int, int]) -> None:
        """Replace everything (a checkpoint being restored)."""
        self.index, self.checksums, self.customer_counts, self.newest_by_partition = index, checksums, customers, newest
        self.updates += 1

    def partitions(self) -> set[int]:
        return set(self.checksums)

    def fact_bytes(self) -> int:
        """Bytes the fact columns of the current index hold (the index is replaced on load and forget)."""
        return self.index.nbytes()

    def customers(self) -> int:
        return sum(self.customer_counts.values())

    def keys(self) -> int:
        return sum(len(t) for t in self.checksums.values())

    @property
    def newest_us(self) -> int | None:
        return max(self.newest_by_partition.values()) if self.newest_by_partition else None

    # -- the questions of metrics.questions ------------------------------------------------------

    def _answers(self) -> dict[Key, Any]:
        """The memoized answers of the index as it is now."""
        version = (id(self.index), self.index.version)
        if self._cache_version != version:
            self._cache, self._cache_version = {}, version
        return self._cache

    def _memo(self, key: Key, compute: Callable[[], Any]) -> Any:
        answers = self._answers()
        if key not in answers:
            answers[key] = compute()
        return answers[key]

    def _view(self, segment: str) -> FactIndex:
        if not segment.startswith("abc:"):
            return self.index
        return self._memo(("abc-view", segment), lambda: self._abc_view(segment))  # type: ignore[no-any-return]

    def _abc_view(self, label: str) -> FactIndex:
        segment, at, cuts = parse_abc_label(label)
        clv, who = self.clv_ranking(at)
        codes = class_codes(clv, who, cuts)
        whos = who[codes == CLASSES.index(segment.removeprefix("abc:"))]
        if segment == "abc:C":  # customers without a positive CLV are C as well
            whos = np.concatenate([whos, self._known(at)[0][self._known(at)[1] <= 0]])
        return self.index.subset(whos, label, ALL)

    def count(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        return self._view(segment).count(segment, kind, start, end)

    def total(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        return self._view(segment).total(segment, kind, start, end)

    def inside(self, segment: str, kind: str, start: int, end: int) -> int:
        return self._view(segment).inside(segment, kind, start, end)

    def kinds(self, segment: str, prefix: str) -> set[str]:
        return self._view(segment).kinds(segment, prefix)

    def first(self, segment: str, kind: str) -> int | None:
        return self._view(segment).first(segment, kind)

    def sorted_values(self, segment: str, kind: str, start: int, end: int) -> I64:
        return self._memo(("values", segment, kind, start, end),  # type: ignore[no-any-return]
                          lambda: self._view(segment).values(segment, kind, start, end))

    def newest(self) -> int | None:
        return self.newest_us

    def cohort_table(self, segment: str, bounds: Sequence[int], cohorts: int, until: int) -> list[Any]:
        return self._memo(cohort_key("cohorts", segment, bounds, cohorts, until),  # type: ignore[no-any-return]
                          lambda: cohort_table(self.index, segment, bounds, cohorts, until))

    def cohort_tables(self, segments: Sequence[str], bounds: Sequence[int], cohorts: int, until: int) -> list[Any]:
        return self._memo(cohort_key("cohort_tables", segments, bounds, cohorts, until),  # type: ignore[no-any-return]
                          lambda: cohort_tables(self.index, segments, bounds, cohorts, until))

    def _known(self, at_us: int) -> tuple[I64, I64]:
        """``(who, clv)`` of every customer known at ``at_us``: signed up or ordered before it."""
        return self._memo(("known", at_us), lambda: ranking.known(self.index, at_us))  # type: ignore[no-any-return]

    def clv_ranking(self, at_us: int) -> tuple[I64, I64]:
        return self._memo(("ranking", at_us), lambda: ranking.ranked(*self._known(at_us)))  # type: ignore[no-any-return]

    def nonpositive_customers(self, at_us: int) -> int:
        return int((self._known(at_us)[1] <= 0).sum())

    def ask(self, questions: list[tuple[Any, ...]]) -> list[Any]:
        """This store's answers (for a cluster: not merged with the other workers')."""
        return [answer_question(self, q) for q in questions]

    def prepare(self, questions: list[Question], known: dict[Key, Any] | None = None) -> Deferred | None:
        """The long part of answering ``questions`` — cohort tables, CLV rankings and the sorted values
        behind quantiles, not computed yet (not in ``known``, by default what this state remembers) —
        as a call that may run on another thread: it works on copies of the facts it reads, taken now.
        Hand what it returns to :meth:`remember`, then :meth:`ask` finds them. ``None``: nothing long."""
        jobs: dict[Key, Callable[[], Answers]] = {}
        done = self._answers() if known is None else known
        for q in questions:
            long = self._long(q)
            if long is not None and long[0] not in jobs and long[0] not in done:
                jobs[long[0]] = long[1]()  # the copies are taken only for what is still to compute
        return Deferred((id(self.index), self.index.version), list(jobs.values())) if jobs else None

    def remember(self, version: tuple[int, int], answers: Answers) -> None:
        """Keep what a :class:`Deferred` of this index computed, unless the index changed meanwhile."""
        if version == (id(self.index), self.index.version):
            self._answers().update(answers)

    def _long(self, q: Question) -> tuple[Key, Long] | None:
        """The memo key of ``q``'s long part, and what takes its copies and returns the work on them."""
        if q[0] in ("cohorts", "cohort_tables"):
            return self._long_cohorts(q)
        if q[0] in CLV_QUESTIONS:
            return self._long_ranking(int(q[1]))
        if len(q) > 1 and isinstance(q[1], str) and q[1].startswith("abc:"):  # a class's facts: the ranking first
            return self._long_ranking(parse_abc_label(q[1])[1])
        if q[0] in VALUE_QUESTIONS:  # quantiles: a sort of every value of a kind in the range
            return self._long_values(*q[1:5])
        return None

    def _long_values(self, segment: str, kind: str, start: int, end: int) -> tuple[Key, Long]:
        key = ("values", segment, kind, start, end)

        def freeze() -> Callable[[], Answers]:
            frozen = Frozen(self.index, [(kind, start, end)], [segment])
            return lambda: [(key, sorted_values(frozen, segment, kind, start, end))]

        return key, freeze

    def _long_cohorts(self, q: Question) -> tuple[Key, Long]:
        name, segments, bounds, cohorts, until = q
        one = name == "cohorts"
        key = cohort_key(name, segments, bounds, cohorts, until)
        compute = cohort_table if one else cohort_tables

        def freeze() -> Callable[[], Answers]:
            frozen = Frozen(self.index, cohort_reads(bounds, cohorts, until), [ALL, *([segments] if one else segments)])
            return lambda: [(key, compute(frozen, segments, bounds, cohorts, until))]

        return key, freeze

    def _long_ranking(self, at: int) -> tuple[Key, Long]:
        def freeze() -> Callable[[], Answers]:
            frozen = Frozen(self.index, ranking.reads(at))

            def rank() -> Answers:
                known = ranking.known(frozen, at)
                return [(("known", at), known), (("ranking", at), ranking.ranked(*known))]

            return rank

        return ("ranking", at), freeze

    def known(self, at_us: int) -> tuple[I64, I64]:
        """``(who, clv)`` of this store's customers known at ``at_us``, sorted by who."""
        return self._known(at_us)

    # -- the KPI query of this store alone (tests, one worker owning everything) ------------------

    def answer(self, period: Period, segment: str) -> dict[str, Any]:
        return run(answer_plan(period, segment, self.abc_thresholds), self.ask)

    def abc(self, at_us: int) -> tuple[list[Cut], AbcSummary]:
        return run(abc(at_us, self.abc_thresholds), self.ask)


def answer_plan(period: Period, segment: str, thresholds: tuple[float, float]) -> Plan[dict[str, Any]]:
    """Every KPI of ``segment`` in ``period``, with its inputs and the ABC classes at the end."""
    cuts, summary = yield from abc(period.end_us, thresholds)
    label = abc_label(segment, period.end_us, cuts) if segment.startswith("abc:") else segment
    families = yield from plan(lambda view: all_kpis(view, label, period.start_us, period.end_us))
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
    return {
        "period": {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()},
        "segment": segment,
        "kpis": kpis,
        "inputs": inputs,
        "abc": {
            "as_of": period.end.isoformat(),
            "thresholds": list(thresholds),
            "customers": summary.customers,
            "clv_share": summary.clv_share,
            "total_clv": summary.total_clv,
        },
    }


def oldest_pending_reply(view: Any) -> int | None:
    """Open time of the oldest ticket still waiting for a first agent reply, if any."""
    first: int | None = view.first(ALL, F.PENDING_REPLY)
    return first
