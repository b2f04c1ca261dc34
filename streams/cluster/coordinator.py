"""Asks a question of every worker's KPI store and merges the answers (:mod:`metrics.questions`).

The owners of the customer partitions come from the consumer group's assignment; each worker answers
for exactly the partitions it owns, once its KPI store has read their changelog, or refuses. A merged
answer therefore covers every partition exactly once, or there is none: :class:`Unavailable` says which
partitions are missing and why (a rebalance, a worker restoring, one that does not answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from metrics.exceptions import Unavailable
from metrics.questions import Question, merge
from metrics.store import KpiStore

CHUNK = 200  # questions answered between two turns of the event loop


class Transport(Protocol):
    """Sends questions to another worker; its answer, or raises :class:`Unavailable`."""

    async def ask(self, url: str, partitions: list[int], questions: Sequence[Question]) -> list[Any]: ...


class LocalShare:
    """This worker's own part: its KPI store, for the partitions its follower has caught up on."""

    def __init__(self, store: KpiStore, owned: Callable[[], frozenset[int] | None],
                 caught: Callable[[], set[int]]) -> None:
        self.store, self.owned, self.caught = store, owned, caught

    def check(self, partitions: Sequence[int]) -> None:
        """Raise :class:`Unavailable` unless this worker can answer for exactly ``partitions`` now."""
        owned = self.owned() or frozenset()
        if set(partitions) != owned:
            raise Unavailable(f"asked for partitions {sorted(partitions)}, this worker owns {sorted(owned)} "
                              "(a rebalance is under way)")
        restoring = owned - self.caught()
        if restoring:
            raise Unavailable(f"partitions {sorted(restoring)} are still being restored")

    async def ask(self, partitions: Sequence[int], questions: Sequence[Question]) -> list[Any]:
        self.check(partitions)
        answers: list[Any] = []
        for start in range(0, len(questions), CHUNK):
            answers += self.store.ask(list(questions[start:start + CHUNK]))
            await asyncio.sleep(0)  # other work goes on between chunks
        self.check(partitions)  # not given away while answering
        return answers


class Cluster:
    """The KPI stores of every worker as one: :meth:`ask` returns what one store holding all would say."""

    def __init__(self, partitions: int, members: Callable[[], dict[str, frozenset[int]]], me: str,
                 local: LocalShare, transport: Transport) -> None:
        self.partitions, self.members, self.me, self.local, self.transport = partitions, members, me, local, transport

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

    async def ask(self, questions: list[Question]) -> list[Any]:
        if not questions:
            return []
        plan = self.plan()
        parts = await asyncio.gather(*(
            self.local.ask(partitions, questions) if url == self.me
            else self.transport.ask(url, partitions, questions)
            for url, partitions in plan.items()
        ))
        return [merge(q, [p[i] for p in parts]) for i, q in enumerate(questions)]
