"""A compact map from 63-bit customer ids to 64-bit values (open addressing in two numpy arrays).

The KPI store remembers, per customer, only a checksum of the fact set it holds. A Python dict of
ints costs ~100 bytes an entry; this costs 16 bytes a slot at a load of at most 1/2.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from metrics.exceptions import KeyRangeError

_EMPTY = 0  # so ids must not be 0


class KeyTable:
    """``id -> value`` for ids in ``[1, 2**63)``."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1 << max(4, (capacity * 2 - 1).bit_length())
        self._keys = np.zeros(size, np.int64)
        self._values = np.zeros(size, np.int64)
        self._len = 0

    def _slot(self, key: int) -> int:
        keys, mask = self._keys, len(self._keys) - 1
        slot = key & mask
        while True:
            k = int(keys[slot])
            if k in (key, _EMPTY):
                return slot
            slot = (slot + 1) & mask

    def get(self, who: int) -> int | None:
        slot = self._slot(who)
        return None if int(self._keys[slot]) == _EMPTY else int(self._values[slot])

    def put(self, who: int, value: int) -> None:
        if not 0 < who < 1 << 63:
            raise KeyRangeError(f"id {who} is not in [1, 2**63)")
        key = who
        slot = self._slot(key)
        if int(self._keys[slot]) == _EMPTY:
            self._keys[slot] = key
            self._len += 1
            if self._len * 2 > len(self._keys):
                self._values[slot] = value
                self._grow()
                return
        self._values[slot] = value

    def __len__(self) -> int:
        return self._len

    def __contains__(self, who: int) -> bool:
        return self.get(who) is not None

    def _grow(self) -> None:
        """Twice the slots; every key re-placed by linear probing, all keys a round (a Python loop over a
        million keys held the event loop for half a second). A key moves on only from an occupied slot,
        so no empty slot lies between a key's home and its place: :meth:`_slot` finds it."""
        used = self._keys != _EMPTY
        keys, values = self._keys[used], self._values[used]
        mask = len(self._keys) * 2 - 1
        self._keys, self._values = np.zeros(mask + 1, np.int64), np.zeros(mask + 1, np.int64)
        slots, waiting = keys & mask, np.arange(len(keys))
        while len(waiting):
            free = waiting[self._keys[slots[waiting]] == _EMPTY]
            taken, first = np.unique(slots[free], return_index=True)  # one key per free slot
            placed = free[first]
            self._keys[taken], self._values[taken] = keys[placed], values[placed]
            waiting = np.setdiff1d(waiting, placed, assume_unique=True)
            slots[waiting] = (slots[waiting] + 1) & mask
        self._len = len(keys)

    def to_arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        return self._keys.copy(), self._values.copy()

    @classmethod
    def from_arrays(cls, keys: npt.NDArray[np.int64], values: npt.NDArray[np.int64]) -> KeyTable:
        table = cls()
        table._keys, table._values = keys.astype(np.int64), values.astype(np.int64)
        table._len = int((keys != _EMPTY).sum())
        return table
