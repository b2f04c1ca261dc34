"""The reference's fact-set codec and delta (the compiled one writes the same bytes)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from metrics.blob import checksum, decode, encode
from metrics.facts import Fact

__all__ = ["FactDelta", "changed", "difference", "encode"]


@dataclass(frozen=True, slots=True)
class FactDelta:
    """A fact set went from checksum ``before`` to ``after`` by removing and adding these facts."""

    before: int
    after: int
    removed: list[Fact]
    added: list[Fact]


def difference(old: list[Fact], new: list[Fact]) -> tuple[list[Fact], list[Fact]]:
    """``(removed, added)`` between two fact multisets."""
    old_set, new_set = set(old), set(new)
    if len(old_set) == len(old) and len(new_set) == len(new):  # no repeated fact: sets suffice
        return list(old_set - new_set), list(new_set - old_set)
    before, after = Counter(old), Counter(new)
    return list((before - after).elements()), list((after - before).elements())


def changed(old_blob: bytes, new_blob: bytes, new: list[Fact]) -> FactDelta:
    """The delta from ``old_blob`` to ``new_blob`` (whose facts are ``new``)."""
    if old_blob == new_blob:
        same = checksum(new_blob)
        return FactDelta(same, same, [], [])
    removed, added = difference(decode(old_blob), new)
    return FactDelta(checksum(old_blob), checksum(new_blob), removed, added)
