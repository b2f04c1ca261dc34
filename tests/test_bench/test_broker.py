"""Which names a bench run's start deletes as left over from earlier kept runs (unit, no broker)."""

from __future__ import annotations

from pathlib import Path

from bench.broker import earlier_run, new_tag, remove_dirs


def test_only_other_runs_names_count_as_left_over() -> None:
    doomed = earlier_run("bench-0000abcd")
    assert doomed("bench-12345678-r01.lifecycle")
    assert doomed("soak-9abcdef0-monitor-customers-changelog")
    assert not doomed("bench-0000abcd-r01.lifecycle")  # the current run's own
    assert not doomed("retention.lifecycle")
    assert not doomed("test-12345678-events")  # the test suite cleans up after itself
    assert not doomed("my-bench-12345678")  # a run tag starts the name
    assert doomed(new_tag("bench") + "-r01.lifecycle")
    assert doomed(new_tag("soak") + "-monitor")


def test_kept_state_directories_of_earlier_runs_are_removed(tmp_path: Path) -> None:
    for name in ("bench-12345678", "bench-0000abcd", "notes"):
        (tmp_path / name / "state").mkdir(parents=True)
    (tmp_path / "soak-9abcdef0.json").write_text("{}")  # files are results, not kept state
    remove_dirs(tmp_path, earlier_run("bench-0000abcd"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench-0000abcd", "notes", "soak-9abcdef0.json"]
