"""The simulator's populations (active and churned customers, reps)."""

from __future__ import annotations

import random


class Pool:
    """A list with O(1) add/remove/random choice; lists (not sets) keep runs reproducible."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: str) -> bool:
        return item in self._index

    def add(self, item: str) -> None:
        self._index[item] = len(self.items)
        self.items.append(item)

    def remove(self, item: str) -> None:
        pos = self._index.pop(item)
        last = self.items.pop()
        if pos < len(self.items):
            self.items[pos] = last
            self._index[last] = pos

    def choice(self, rng: random.Random) -> str:
        return self.items[rng.randrange(len(self.items))]
