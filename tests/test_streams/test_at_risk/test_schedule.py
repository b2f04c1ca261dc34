"""The compiled at-risk schedule against the dict and heap it replaced: the same keys come due in the
same order, whatever the sequence of (re)schedules, cancels, pops and partitions given away."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st
from retention_native import Schedule

KEYS = st.sampled_from([b"a", b"b", b"c", b"", b"rep:x", bytes(range(40)), "ü".encode()])
TIMES = st.integers(-5, 20)
OPS = st.lists(st.one_of(st.tuples(st.just("set"), KEYS, st.one_of(st.none(), TIMES)),
                         st.tuples(st.just("pop"), TIMES), st.tuples(st.just("retain"), KEYS)),
               max_size=80)  # fmt: skip


class Reference:
    """What the tracker kept before: a dict of due times and a heap with stale entries skipped."""

    def __init__(self) -> None:
        self.due: dict[bytes, int] = {}
        self.heap: list[tuple[int, bytes]] = []

    def set(self, key: bytes, t: int | None) -> None:
        if t is None:
            self.due.pop(key, None)
        elif self.due.get(key) != t:
            self.due[key] = t
            heapq.heappush(self.heap, (t, key))

    def pop_due(self, now: int) -> bytes | None:
        while self.heap and self.heap[0][0] <= now:
            t, key = heapq.heappop(self.heap)
            if self.due.get(key) == t:
                del self.due[key]
                return key
        return None

    def any_due(self, now: int) -> bool:
        return any(t <= now for t in self.due.values())

    def retain(self, gone: bytes) -> None:
        self.due.pop(gone, None)
        self.heap = [(t, k) for k, t in self.due.items()]
        heapq.heapify(self.heap)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_the_compiled_schedule_gives_what_the_dict_and_heap_gave(ops: list[tuple[object, ...]]) -> None:
    got, want = Schedule(), Reference()
    for op in ops:
        if op[0] == "set":
            key, t = op[1], op[2]
            assert isinstance(key, bytes)
            assert t is None or isinstance(t, int)
            got.set(key, t)
            want.set(key, t)
        elif op[0] == "pop":
            now = op[1]
            assert isinstance(now, int)
            assert got.any_due(now) == want.any_due(now)
            popped = [got.pop_due(now) for _ in range(3)]
            assert popped == [want.pop_due(now) for _ in range(3)]
        else:
            gone = op[1]
            assert isinstance(gone, bytes)
            got.retain(lambda key, gone=gone: key != gone)  # type: ignore[misc]
            want.retain(gone)
        assert len(got) == len(want.due)
        assert sorted(got.scheduled()) == sorted(want.due)
        assert all(got.get(k) == t for k, t in want.due.items())


def test_many_reschedules_keep_one_entry_a_key() -> None:
    schedule = Schedule()
    for t in range(10_000):
        schedule.set(b"k", t)
    assert len(schedule) == 1
    assert schedule.get(b"k") == 9_999
    assert schedule.pop_due(9_998) is None
    assert schedule.pop_due(9_999) == b"k"
    assert len(schedule) == 0
