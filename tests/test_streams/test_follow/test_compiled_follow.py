"""The changelog follower's compiled fast path against its reference (every entry by ``apply_entry``):
the same key tables, facts, customer counts, newest times, latency stamps and errors, on random
changelogs with redeliveries, gaps (repairs), tombstones, other encodings and broken entries."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.settings import Settings
from metrics import blob
from metrics.facts import Fact, context
from metrics.keytable import to_arrays
from metrics.records import CustomerState, encode_state
from metrics.store import KpiStore, who_of
from streams.follow.follower import Stamps, apply_entries, apply_entry
from streams.memory import Message
from streams.wire import Change, decode_change, encode_change

PARTITION = 3
KEYS = [b"c1", b"c2", b"c3", b"rep:r1"]
FACT = st.tuples(st.integers(0, 3).map(lambda d: d * 86_400_000_000 + 5), st.sampled_from(["new", "order", "churn"]),
                 st.sampled_from([(), ("plan=pro",), ("plan=pro", "region=eu")]),
                 st.one_of(st.none(), st.integers(-3, 3)))  # fmt: skip
FACT_SET = st.lists(FACT, max_size=4)


def new_store() -> KpiStore:
    return KpiStore(context(Settings().facts))


def _blob(facts: list[Fact]) -> bytes:
    return blob.encode(list(facts))


def chain(key: bytes, sets: list[list[Fact]], start_ms: int) -> list[tuple[bytes, bytes]]:
    """A key's entries as the apply stage writes them: from no facts through each set in turn."""
    out, old = [], list[Fact]()
    for i, new in enumerate(sets):
        before, after = Counter(old), Counter(new)
        state = encode_state(CustomerState(records=[], newest_us=start_ms * 1000 + i, facts=_blob(new)))
        change = Change(state, blob.checksum(_blob(old)), blob.checksum(_blob(new)),
                        _blob(list((before - after).elements())), _blob(list((after - before).elements())),
                        start_ms * 1000 + i, (start_ms + i) % 3)  # fmt: skip
        out.append((key, encode_change(change)))
        old = new
    return out


def six_fields(value: bytes) -> bytes:
    """The same change without its input timestamp (an entry of an older version)."""
    fields = msgspec.msgpack.decode(value)
    return msgspec.msgpack.encode(fields[:6])


HOSTILE = st.sampled_from([b"", b"\x93\x01\x02\x03", b"\xc1", b"not msgpack", msgspec.msgpack.encode(["x"] * 7),
                           msgspec.msgpack.encode([b"s", 1, 2, "removed", b"", None, 0]),
                           msgspec.msgpack.encode([b"\x93\x90\xc0\xc4\x01\x00", 1, 2, b"", b"", None, 0]),
                           msgspec.msgpack.encode([b"", 1, 2**64 - 1, b"", b"", None, 0]),
                           msgspec.msgpack.encode([b"", 1, 2, b"", b"", None, 0, "extra"])])  # fmt: skip


@st.composite
def changelogs(draw: st.DrawFn) -> list[Message]:
    entries: list[tuple[bytes | None, bytes | None]] = []
    for n, key in enumerate(KEYS):
        entries += chain(key, draw(st.lists(FACT_SET, max_size=5)), 1_000 * n)
    order = draw(st.permutations(range(len(entries))))
    stream = sorted(range(len(entries)), key=lambda i: (entries[i][0] or b"", i))  # a key's entries in order
    mixed = [entries[i] for i in (order if draw(st.booleans()) else stream)]  # or any order at all
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(mixed)))
        what = draw(st.sampled_from(["again", "drop", "tombstone", "six", "hostile", "no key"]))
        if what in ("again", "drop", "six") and not mixed:
            continue
        pick = mixed[min(at, len(mixed) - 1)] if mixed else (b"c1", None)
        if what in ("six", "no key"):  # of an entry as the apply stage wrote it
            pick = draw(st.sampled_from(entries)) if entries else (b"c1", None)
        if what == "again":
            mixed.insert(at, pick)
        elif what == "drop":
            mixed.pop(min(at, len(mixed) - 1))
        elif what == "six" and pick[1] is not None:
            mixed.insert(at, (pick[0], six_fields(pick[1])))
        elif what == "tombstone":
            mixed.insert(at, (draw(st.sampled_from(KEYS)), None))
        elif what == "hostile":
            mixed.insert(at, (draw(st.sampled_from(KEYS)), draw(HOSTILE)))
        elif what == "no key" and pick[1] is not None:
            mixed.insert(at, (None, pick[1]))
    return [Message(key, value, offset, 1_700_000_000_000 + offset) for offset, (key, value) in enumerate(mixed)]


def reference(records: list[Message]) -> tuple[KpiStore, list[tuple[int, int]], list[tuple[int, str]]]:
    store, stamps, errors = new_store(), list[tuple[int, int]](), list[tuple[int, str]]()
    for i, record in enumerate(records):
        try:
            change = apply_entry(store, PARTITION, record.key, record.value)  # type: ignore[arg-type]
        except Exception as error:
            errors.append((i, type(error).__name__))
            continue
        if change is not None and change.timestamp_ms:
            stamps.append((change.timestamp_ms, record.timestamp))
    return store, stamps, errors


def compiled(records: list[Message], batches: list[int]) -> tuple[KpiStore, Stamps, list[tuple[int, str]], list[int]]:
    """``records`` in batches of the given sizes; after an error, the batch goes on past the entry that
    failed (the reference says which one: the other checks find any difference)."""
    store, stamps, errors = new_store(), Stamps(), list[tuple[int, str]]()
    _, _, expected = reference(records)
    failing = [i for i, _ in expected]
    start, sizes = 0, iter(batches)
    while start < len(records):
        end = min(len(records), start + max(1, next(sizes, len(records))))
        at = start
        while at < end:
            try:
                apply_entries(store, PARTITION, records[at:end], stamps)  # type: ignore[arg-type]
                at = end
            except Exception as error:
                failed = next((i for i in failing if i >= at), end)
                errors.append((failed, type(error).__name__))
                at = failed + 1
        start = end
    return store, stamps, errors, failing


def held(store: KpiStore) -> dict[str, Any]:
    tables = {p: {int(k): int(v) for k, v in zip(*to_arrays(t), strict=True) if k} for p, t in store.checksums.items()}
    whos = sorted({w for table in tables.values() for w in table})
    return {"tables": tables, "customers": store.customer_counts, "newest": store.newest_by_partition,
            "updates": store.updates, "facts": store.index.facts,
            "by_who": {w: sorted(store.index.facts_of(w), key=repr) for w in whos}}  # fmt: skip


@given(changelogs(), st.lists(st.integers(1, 8), max_size=10))
@settings(max_examples=250, deadline=None)
def test_the_compiled_follower_holds_what_the_reference_holds(records: list[Message], batches: list[int]) -> None:
    want, want_stamps, want_errors = reference(records)
    got, stamps, errors, _ = compiled(records, batches)
    assert errors == want_errors
    assert held(got) == held(want)
    published, written = stamps.arrays() if stamps.published else (np.zeros(0), np.zeros(0))
    got_stamps = list(zip(published.tolist(), written.tolist(), strict=True))
    assert got_stamps == [(float(p), float(w)) for p, w in want_stamps]


def test_the_usual_entries_take_the_fast_path_in_one_call() -> None:
    """First entries, chained deltas and a redelivered latest entry: one call applies them all, the timestamps too."""
    facts = [[(5, "new", (), None)], [(5, "new", (), None), (9, "order", ("plan=pro",), 3)], [(9, "order", (), 1)]]
    entries = chain(b"c1", facts, 1_000) + chain(b"rep:r1", facts[:1], 2_000)
    records = [Message(k, v, i, 1_700_000_000_000 + i) for i, (k, v) in enumerate([*entries, entries[2]])]
    store = new_store()
    followed = store.follow(PARTITION, records)  # type: ignore[arg-type]
    assert (followed.next, followed.applied, followed.customers) == (len(records), len(records), 1)
    stamped = [(decode_change(r.value).timestamp_ms, r.timestamp) for r in records if r.value is not None]
    want = [stamp for stamp in stamped if stamp[0]]
    assert np.frombuffer(followed.published_ms, np.int64).tolist() == [p for p, _ in want]
    assert np.frombuffer(followed.written_ms, np.int64).tolist() == [w for _, w in want]
    assert store.customers() == 1
    assert store.keys() == 2
    assert store.newest_by_partition == {PARTITION: 2_000_000}
    assert sorted(store.index.facts_of(who_of(b"c1"))) == [(9, "order", (), 1)]


def test_a_tombstone_stops_the_fast_path_where_it_is() -> None:
    entries = chain(b"c1", [[(5, "new", (), None)]], 0)
    records = [Message(b"c2", None, 0, 1), Message(*entries[0], 1, 2)]
    store = new_store()
    assert store.follow(PARTITION, records).next == 0  # type: ignore[arg-type]
    assert store.follow(PARTITION, records, 1).next == 2  # type: ignore[arg-type]


def test_the_compiled_key_of_a_customer_is_the_store_s() -> None:
    store = new_store()
    keys = [b"", b"c1", b"rep:x", "ü".encode(), bytes(range(256))]
    records = [Message(key, value, i, 0) for i, (key, value) in enumerate(
        entry for key in keys for entry in chain(key, [[(5, "new", (), None)]], 0))]
    assert store.follow(PARTITION, records).next == len(records)  # type: ignore[arg-type]
    assert all(store.checksums[PARTITION].get(who_of(key)) is not None for key in keys)
    with pytest.raises(ValueError, match="not in"):
        store.checksums[PARTITION].put(0, 1)
