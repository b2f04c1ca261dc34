"""A compact map from 63-bit customer ids to 64-bit values: the KPI store's checksum per key.

The table is compiled (``retention_native.KeyTable``, open addressing in two int64 arrays: 16 bytes a
slot at a load of at most 1/2, where a Python dict of ints costs ~100 bytes an entry), so the
changelog follower's fast path reads and writes it without Python. Checkpoints keep its two arrays
as they are; these two functions are their numpy face.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from retention_native import KeyTable

__all__ = ["KeyTable", "from_arrays", "to_arrays"]


def to_arrays(table: KeyTable) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Copies of the table's key and value slots (0: an empty slot)."""
    keys, values = table.to_bytes()
    return np.frombuffer(keys, np.int64), np.frombuffer(values, np.int64)


def from_arrays(keys: npt.NDArray[np.int64], values: npt.NDArray[np.int64]) -> KeyTable:
    """The table of slots :func:`to_arrays` gave."""
    return KeyTable.from_bytes(np.ascontiguousarray(keys, np.int64).tobytes(),
                               np.ascontiguousarray(values, np.int64).tobytes())  # fmt: skip
