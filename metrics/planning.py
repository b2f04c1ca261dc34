"""Computing KPIs from stores that answer only questions (:mod:`metrics.questions`): the worker's own
partitions, or every worker of a cluster.

The KPI functions run on a :class:`PlannedView` that answers from what is known and notes what is
not; the questions noted are asked, and the functions run again, until nothing is missing. Order
statistics (nearest-rank quantiles) and the ABC cut points are found by narrowing a value range with
histograms until the few values left are fetched. Everything here is a generator that yields the
questions of a round and is sent their merged answers, so the same code runs in memory (:func:`run`)
and over the network (:func:`run_async`).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Protocol, TypeVar

from metrics.abc_classes import CLASSES, AbcSummary, Cut
from metrics.questions import Question, bin_edges

T = TypeVar("T")
Plan = Generator[list[Question], list[Any], T]
BINS = 256
FEW = 4096  # a range this small is fetched value by value
MAX_ROUNDS = 8
WHO_END = 2**62 + 1  # customer ids (metrics.store.who_of) lie in [1, 2**62]


class PlannedView:
    """A :class:`metrics.kpis.FactView` over known answers; an unknown one is noted and read as empty."""

    def __init__(self, known: dict[Question, Any]) -> None:
        self.known = known
        self.missing: set[Question] = set()

    def _get(self, question: Question, default: Any) -> Any:
        if question in self.known:
            return self.known[question]
        self.missing.add(question)
        return default

    def count(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        return int(self._get(("count", segment, kind, start, end), 0))

    def total(self, segment: str, kind: str, start: int | None, end: int | None) -> int:
        return int(self._get(("total", segment, kind, start, end), 0))

    def inside(self, segment: str, kind: str, start: int, end: int) -> int:
        return int(self._get(("inside", segment, kind, start, end), 0))

    def below(self, segment: str, kind: str, start: int, end: int, value: int) -> int:
        return int(self._get(("below", segment, kind, start, end, value), 0))

    def nth(self, segment: str, kind: str, start: int, end: int, rank: int) -> int:
        return int(self._get(("nth", segment, kind, start, end, rank), 0))

    def kinds(self, segment: str, prefix: str) -> set[str]:
        return set(self._get(("kinds", segment, prefix), []))

    def first(self, segment: str, kind: str) -> int | None:
        found = self._get(("first", segment, kind), None)
        return None if found is None else int(found)


def plan(compute: Callable[[PlannedView], T]) -> Plan[T]:
    """``compute`` run until every answer it needs is known."""
    known: dict[Question, Any] = {}
    for _ in range(MAX_ROUNDS):
        view = PlannedView(known)
        result = compute(view)
        if not view.missing:
            return result
        known.update((yield from resolve(sorted(view.missing, key=repr))))
    raise RuntimeError(f"KPI computation still missing answers after {MAX_ROUNDS} rounds")


def resolve(questions: Sequence[Question]) -> Plan[dict[Question, Any]]:
    """Answers to ``questions``; an ``nth`` question is found by :func:`select`."""
    simple = [q for q in questions if q[0] != "nth"]
    nths = [q for q in questions if q[0] == "nth"]
    out: dict[Question, Any] = {}
    if simple:
        out.update(zip(simple, (yield simple), strict=True))
    if nths:
        out.update(zip(nths, (yield from select(nths)), strict=True))
    return out


def select(nths: Sequence[Question]) -> Plan[list[int]]:
    """The values of ``("nth", segment, kind, start, end, rank)`` questions, all narrowed in step."""
    spans = yield [("span", *q[1:5]) for q in nths]
    # per question: the range [lo, hi) known to hold the wanted value, how many values it holds, the rank in it
    state = [[span[1], span[2] + 1, span[0], q[5]] for q, span in zip(nths, spans, strict=True)]
    found: dict[int, int] = {}
    while len(found) < len(nths):
        open_ = [i for i in range(len(nths)) if i not in found]
        fetch = [i for i in open_ if state[i][2] <= FEW or state[i][1] - state[i][0] <= BINS]
        narrow = [i for i in open_ if i not in fetch]
        answers = yield ([("values", *nths[i][1:5], state[i][0], state[i][1]) for i in fetch]
                         + [("histogram", *nths[i][1:5], state[i][0], state[i][1], BINS) for i in narrow])
        for i, values in zip(fetch, answers, strict=False):
            found[i] = int(values[state[i][3] - 1])
        for i, counts in zip(narrow, answers[len(fetch):], strict=True):
            state[i] = _narrowed(state[i], counts)
    return [found[i] for i in range(len(nths))]


def _narrowed(state: list[int], counts: Sequence[int]) -> list[int]:
    lo, hi, _, rank = state
    edges = bin_edges(lo, hi, len(counts))
    for b, n in enumerate(counts):
        if rank <= n:
            return [edges[b], edges[b + 1], n, rank]
        rank -= n
    raise ValueError("the rank is beyond the values counted")


# -- ABC: the cut points of the classes, found across stores -------------------------------------


def abc(at: int, thresholds: tuple[float, float]) -> Plan[tuple[list[Cut], AbcSummary]]:
    """The last A and the last B customer at ``at`` (CLV descending, then id), and the class summary."""
    n, total, low, high, _ = (yield [("clv_span", at)])[0]
    cuts: list[Cut] = [None, None]
    if n:
        for c, share in enumerate(thresholds):
            cuts[c] = yield from _cut(at, share * total, total, low, high)
    rows = (yield [("abc_summary", at, cuts)])[0]
    whole = sum(r[1] for r in rows)
    summary = AbcSummary({cls: rows[i][0] for i, cls in enumerate(CLASSES)},
                         {cls: None if whole == 0 else rows[i][1] / whole for i, cls in enumerate(CLASSES)},
                         whole / 1e6)
    return cuts, summary


def _cut(at: int, limit: float, total: int, low: int, high: int) -> Plan[Cut]:
    """The last customer ``x`` with ``before(x) < limit`` (the CLV ranked ahead of it, compared as a
    float as :func:`metrics.abc_classes.classify_arrays` does): the first whose running sum reaches it."""
    if float(total) < limit:  # float rounding at the very top: everyone is in
        return (yield from _last(at, low))
    lo, hi, before = low, high + 1, 0  # [lo, hi) holds the cut; ``before``: the CLV ranked ahead of it
    while hi - lo > 1:
        if hi - lo <= BINS:
            rows = (yield [("clv_values", at, lo, hi)])[0]
            for clv, who in rows:
                before += clv
                if float(before) >= limit:
                    return [clv, who]
            raise ValueError("no customer reaches the ABC limit")
        bins = (yield [("clv_histogram", at, lo, hi, BINS)])[0]
        edges = bin_edges(lo, hi, BINS)
        for b in range(BINS - 1, -1, -1):  # highest values first
            count, amount = bins[b]
            if count and float(before + amount) >= limit:
                lo, hi = edges[b], edges[b + 1]
                break
            before += amount
        else:
            raise ValueError("no customer reaches the ABC limit")
    return (yield from _tie(at, lo, limit, before))


def _tie(at: int, value: int, limit: float, before: int) -> Plan[Cut]:
    """Among the customers whose CLV is exactly ``value`` (by id), the first whose running sum reaches ``limit``."""
    k = max(1, math.ceil((limit - before) / value) - 1)
    while float(before + k * value) < limit:
        k += 1
    return [value, (yield from _nth_id(at, value, k))]


def _nth_id(at: int, value: int, rank: int) -> Plan[int]:
    lo, hi = 0, WHO_END
    while True:
        counts = (yield [("tie_histogram", at, value, lo, hi, BINS)])[0]
        lo, hi, n, rank = _narrowed([lo, hi, 0, rank], counts)
        if n <= FEW or hi - lo <= BINS:
            return int((yield [("tie_values", at, value, lo, hi)])[0][rank - 1])


def _last(at: int, low: int) -> Plan[Cut]:
    """The last customer of the ranking: the lowest CLV, the highest id among its ties."""
    ids = yield from _nth_id_last(at, low)
    return [low, ids]


def _nth_id_last(at: int, value: int) -> Plan[int]:
    counts = (yield [("tie_histogram", at, value, 0, WHO_END, 1)])[0]
    return (yield from _nth_id(at, value, counts[0]))


def newest() -> Plan[int | None]:
    """The newest event time any store holds."""
    found: int | None = (yield [("newest",)])[0]
    return found


def abc_label(segment: str, at: int, cuts: Sequence[Cut]) -> str:
    """The segment ``abc:X`` as the stores see it: the class, the instant and the cut points."""
    return "@".join([segment, str(at), *("-" if c is None else f"{c[0]},{c[1]}" for c in cuts)])


def parse_abc_label(label: str) -> tuple[str, int, list[Cut]]:
    segment, at, *cuts = label.split("@")
    return segment, int(at), [None if c == "-" else [int(x) for x in c.split(",")] for c in cuts]


# -- drivers ---------------------------------------------------------------------------------------


def run(job: Plan[T], ask: Callable[[list[Question]], list[Any]]) -> T:
    """Run ``job``, answering each round's questions with ``ask`` (in memory)."""
    try:
        questions = next(job)
        while True:
            questions = job.send(ask(questions))
    except StopIteration as stop:
        result: T = stop.value
        return result


class Runner(Protocol):
    """Runs a job to its end against some stores (a worker's cluster, or stores in memory)."""

    async def __call__(self, job: Plan[T]) -> T: ...


async def run_async(job: Plan[T], ask: Callable[[list[Question]], Awaitable[list[Any]]]) -> T:
    """Run ``job``, answering each round's questions with ``ask`` (over the network)."""
    try:
        questions = next(job)
        while True:
            questions = job.send(await ask(questions))
    except StopIteration as stop:
        result: T = stop.value
        return result
