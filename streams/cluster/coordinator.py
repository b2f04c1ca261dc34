"""Asks a question of every worker's KPI store and merges the answers (:mod:`metrics.questions`).

The owners of the customer partitions come from the consumer group's assignment; each worker answers
for exactly the partitions it owns, once its KPI store has read their changelog, or refuses. A merged
answer therefore covers every partition exactly once, or there is none: :class:`Unavailable` says which
partitions are missing and why (a rebalance, a worker restoring, one that does not answer).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from metrics.exceptions import NotPinned, Unavailable
from metrics.pinned import Pinned, pinnable
from metrics.planning import Plan, run_async
from metrics.questions import Question, answer, merge
from metrics.store import Answers, Deferred, KpiStore
from streams.follow.holds import Holds
from streams.pacing import Slice, beside

T = TypeVar("T")

CHUNK = 20  # questions answered between two looks at the event loop: most take well under a millisecond
PINNED = "pin-"  # starts the id of a session that keeps its long results instead of holding stores


class Transport(Protocol):
    """Sends questions to another worker; its answer, or raises :class:`Unavailable`. The worker holds its
    KPI store for ``session`` (see :class:`streams.follow.holds.Holds`) until :meth:`release`."""

    async def ask(self, url: str, partitions: list[int], questions: Sequence[Question], session: str) -> list[Any]: ...

    async def release(self, url: str, session: str) -> None: ...


class LocalShare:
    """This worker's own part: its KPI store, for the partitions its follower has caught up on."""

    def __init__(self, store: KpiStore, owned: Callable[[], frozenset[int] | None],
                 caught: Callable[[], set[int]], holds: Holds) -> None:
        self.store, self.owned, self.caught, self.holds = store, owned, caught, holds
        self._pins: dict[str, tuple[float, Pinned]] = {}  # session -> (lease end, its kept results)

    def check(self, partitions: Sequence[int]) -> None:
        """Raise :class:`Unavailable` unless this worker can answer for exactly ``partitions`` now."""
        owned = self.owned() or frozenset()
        if set(partitions) != owned:
            raise Unavailable(f"asked for partitions {sorted(partitions)}, this worker owns {sorted(owned)} "
                              "(a rebalance is under way)")
        restoring = owned - self.caught()
        if restoring:
            raise Unavailable(f"partitions {sorted(restoring)} are still being restored")
        leaving = self.store.partitions() - owned
        if leaving:
            raise Unavailable(f"partitions {sorted(leaving)} given away are still being forgotten")

    async def ask(self, partitions: Sequence[int], questions: Sequence[Question], session: str) -> list[Any]:
        """The answers of this worker's share: all rounds of ``session`` from one state of the store, or,
        for a pinned session, each long result from one state (:mod:`metrics.pinned`)."""
        self.check(partitions)
        if session.startswith(PINNED):
            answers = await self._pinned(list(questions), session)
        else:
            answers = await self._held(list(questions), session)
        self.check(partitions)  # not given away while answering
        return answers

    async def release(self, session: str) -> None:
        """The session's answer is known: the store may change again, its kept results go."""
        self._pins.pop(session, None)
        await self.holds.release(session)

    async def _held(self, questions: list[Question], session: str) -> list[Any]:
        await self.holds.hold(session)
        answers: list[Any] = []
        turn = Slice()
        for start in range(0, len(questions), CHUNK):
            chunk = questions[start:start + CHUNK]
            deferred = self.store.prepare(chunk)
            if deferred is not None:  # cohort tables, CLV rankings: seconds with a million customers
                self.store.remember(deferred.version, await self._beside(deferred, session))
            answers += self.store.ask(chunk)
            await turn.breathe()  # other work goes on between chunks
        return answers

    async def _pinned(self, questions: list[Question], session: str) -> list[Any]:
        """Answers from the session's kept results (:mod:`metrics.pinned`); the follower writes meanwhile."""
        if not all(pinnable(q) for q in questions):
            raise NotPinned(f"a kept-results session asked {sorted({q[0] for q in questions if not pinnable(q)})}")
        now = time.monotonic()
        pin = self._pins.pop(session, (0.0, Pinned()))[1]
        self._pins = {s: kept for s, kept in self._pins.items() if kept[0] > now}  # abandoned sessions
        deferred = self.store.prepare(questions, pin.results)
        if deferred is not None:
            computed = await beside(deferred)
            pin.results.update(computed)
            self.store.remember(deferred.version, computed)
        self._pins[session] = (time.monotonic() + self.holds.lease_s, pin)
        answers: list[Any] = []
        turn = Slice()
        for start in range(0, len(questions), CHUNK):
            answers += [answer(pin, q) for q in questions[start:start + CHUNK]]
            await turn.breathe()
        return answers

    async def _beside(self, deferred: Deferred, session: str) -> Answers:
        """Run ``deferred`` on a thread, renewing the session's hold meanwhile: were its lease to run out,
        the follower would write, and the answer computed from the copies could not be kept."""
        task = asyncio.ensure_future(beside(deferred))
        while not task.done():
            await asyncio.wait([task], timeout=self.holds.lease_s / 2)
            await self.holds.hold(session)
        return task.result()


class Cluster:
    """The KPI stores of every worker as one: :meth:`ask` returns what one store holding all would say."""

    def __init__(self, partitions: int, members: Callable[[], dict[str, frozenset[int]]], me: str,
                 local: LocalShare, transport: Transport) -> None:
        self.partitions, self.members, self.me, self.local, self.transport = partitions, members, me, local, transport
        self._asked: dict[str, set[str]] = {}  # session -> the workers that hold their store for it

    def plan(self) -> dict[str, list[int]]:
        """Which worker to ask for which partitions; every partition exactly once, or :class:`Unavailable`."""
        members = {url: sorted(parts) for url, parts in self.members().items() if parts}
        seen: dict[int, str] = {}
        for url, parts in members.items():
            for p in parts:
                if p in seen:
                    raise Unavailable(f"partition {p} is assigned to {seen[p]} and {url} (a rebalance is under way)")
                seen[p] = url
        missing = sorted(set(range(self.partitions)) - set(seen))
        if missing:
            raise Unavailable(f"partitions {missing} have no owner (a rebalance is under way)")
        return members

    async def ask(self, questions: list[Question], session: str) -> list[Any]:
        """Every worker's answers to ``questions``, merged; each worker holds its store for ``session``."""
        if not questions:
            return []
        plan = self.plan()
        self._asked.setdefault(session, set()).update(plan)
        parts = await asyncio.gather(*(
            self.local.ask(partitions, questions, session) if url == self.me
            else self.transport.ask(url, partitions, questions, session)
            for url, partitions in plan.items()
        ))
        return [merge(q, [p[i] for p in parts]) for i, q in enumerate(questions)]

    async def __call__(self, job: Plan[T]) -> T:
        """Run ``job`` on the whole cluster: every round sees the same state of every worker's share."""
        return await self._run(job, uuid.uuid4().hex)

    async def pinned(self, job: Plan[T]) -> T:
        """Run ``job``, which asks only pinnable questions (:mod:`metrics.pinned`): every round sees the
        same state of each long result, and no worker stops following its changelog meanwhile."""
        return await self._run(job, PINNED + uuid.uuid4().hex)

    async def _run(self, job: Plan[T], session: str) -> T:
        try:
            return await run_async(job, lambda questions: self.ask(questions, session))
        finally:
            for url in self._asked.pop(session, ()):
                if url == self.me:
                    await self.local.release(session)
                else:  # not awaited: the answer is known, the lease would end it anyway
                    asyncio.get_running_loop().create_task(self.transport.release(url, session))
