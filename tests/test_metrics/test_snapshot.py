"""A KPI store checkpointed part-way through a changelog, restored, and fed the rest of the changelog
answers every KPI query exactly like a store that read it all."""

from __future__ import annotations

import json
from pathlib import Path

from fixtures import seed_example
from pure_pipeline import PurePipeline
from test_streams.test_pipeline import PERIODS

from core.settings import Settings
from metrics import snapshot
from metrics.store import KpiStore
from streams.follow.follower import apply_entry
from streams.producers.simulate import Simulator

SEGMENTS = ("all", "plan:pro", "region:eu", "abc:A")


def _answers(p: PurePipeline) -> list[object]:
    return [p.answer(period, s) for period in PERIODS for s in SEGMENTS]


def test_checkpoint_then_the_rest_of_the_changelog_is_exact(tmp_path: Path) -> None:
    settings = Settings(allowed_lateness="3650d", history="3650d")
    sim = Simulator(settings.facts, settings.topics, seed=5, scenario="churn-spike", customers=200)
    events = [json.loads(v) for _, _, v in sim.events(1_733_011_200_000_000, count=3000, rate=3000 / (150 * 86_400))]
    entries: list[tuple[int, bytes, bytes]] = []
    full = PurePipeline(settings, on_entry=lambda p, k, v: entries.append((p, k, v)))
    full.send(*events, *seed_example(20, 5, 1, prefix="s"))

    half = len(entries) // 2
    reader = PurePipeline(settings)
    for partition, key, value in entries[:half]:
        apply_entry(reader.store, partition, key, value)
    stamp = snapshot.fingerprint(settings.to_dict())
    snapshot.write(snapshot.capture(reader.store, {0: half}, stamp), tmp_path / "cp")
    snapshot.write(snapshot.capture(reader.store, {0: half}, stamp), tmp_path / "cp")  # over an older one

    restored = PurePipeline(settings)
    assert snapshot.read(tmp_path / "cp", restored.store, stamp, max_age=60) == {0: half}
    assert restored.store.customers() == reader.store.customers()
    for partition, key, value in entries[half:]:
        apply_entry(restored.store, partition, key, value)
    assert _answers(restored) == _answers(full)
    assert restored.store.customers() == full.store.customers()


def test_unusable_checkpoints_are_ignored(tmp_path: Path) -> None:
    p = PurePipeline().send(*seed_example(20, 5, 1))
    stamp = snapshot.fingerprint(p.settings.to_dict())
    snapshot.write(snapshot.capture(p.store, {0: 1}, stamp), tmp_path / "cp")
    fresh = KpiStore(p.store.ctx)
    assert snapshot.read(tmp_path / "cp", fresh, "other-settings", max_age=60) is None
    assert snapshot.read(tmp_path / "cp", fresh, stamp, max_age=-1) is None  # too old to trust
    assert snapshot.read(tmp_path / "missing", fresh, stamp, max_age=60) is None
    assert fresh.customers() == 0
    other = Settings(segments={"tier": ["gold"]})
    assert snapshot.fingerprint(other.to_dict()) != stamp


def test_a_restored_store_drops_the_partitions_given_away() -> None:
    """A worker that gets fewer partitions back keeps exactly the others' facts: the same as a worker
    that only ever read those partitions."""
    settings = Settings(allowed_lateness="3650d", history="3650d")
    sim = Simulator(settings.facts, settings.topics, seed=9, scenario="steady", customers=150)
    events = [json.loads(v) for _, _, v in sim.events(1_733_011_200_000_000, count=2000, rate=2000 / (120 * 86_400))]
    entries: list[tuple[int, bytes, bytes]] = []
    PurePipeline(settings, on_entry=lambda p, k, v: entries.append((p, k, v))).send(*events)
    both, one = PurePipeline(settings), PurePipeline(settings)
    for partition, key, value in entries:
        apply_entry(both.store, partition, key, value)
        if partition != 1:
            apply_entry(one.store, partition, key, value)
    assert both.store.partitions() == {0, 1, 2, 3}
    both.store.drop({1})
    assert both.store.partitions() == {0, 2, 3}
    assert both.store.customers() == one.store.customers()
    assert _answers(both) == _answers(one)
