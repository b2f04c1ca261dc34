"""Bad bench arguments stop with one line naming the bad value; the event file is prefix-stable."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import usage_error

from bench.events import ensure_events, read_events
from bench.harness import parse_args


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--customers", "0"], "--customers: 0 is not between 1 and 1,000,000"),
        (["--customers", "2000000"], "2,000,000 is not between"),
        (["--events", "lots"], "--events: 'lots' is not an integer"),
        (["--rate", "-5"], "--rate: '-5' must be > 0"),
        (["--skip", "quix,kafka"], "--skip: 'kafka' is not one of"),
        (["--monitor-env", "STORE=rocksdb://"], "'STORE=rocksdb://' is not RETENTION_NAME=value"),
    ],
)
def test_bad_argument_is_one_line_naming_the_value(argv: list[str], named: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert named in usage_error(parse_args, argv, capsys)


def test_good_arguments() -> None:
    args = parse_args(["--customers", "1_000_000", "--skip", "quix,recovery", "--skip", "latency",
                       "--monitor-env", "RETENTION_STORE=rocksdb://"])  # fmt: skip
    assert args.customers == 1_000_000
    assert args.skip == ["quix", "recovery", "latency"]
    assert args.monitor_env == [("RETENTION_STORE", "rocksdb://")]


def test_a_longer_tail_never_changes_the_backlog(tmp_path: Path) -> None:
    short = ensure_events(40, 300, 0, 5, out=tmp_path / "a")
    long = ensure_events(40, 300, 50, 5, out=tmp_path / "b")
    assert list(read_events(short)) == list(read_events(long, 0, 300))
    everything = list(read_events(long))
    assert len(everything) == 350
    assert list(read_events(long, 310, 340)) == everything[310:340]  # slices seek past the backlog
    assert long.distinct_customers == short.distinct_customers > 0
    # Customers first seen in the tail count once a slice containing them has been consumed.
    assert long.customers_after(0) == long.distinct_customers
    assert long.customers_after(50) == long.distinct_customers + len(long.tail_new_customers)
    assert all(0 <= i < 50 for i in long.tail_new_customers)
    assert sum(long.type_mix.values()) == 300
    # Cached: a shorter tail is served by the file that exists.
    assert ensure_events(40, 300, 20, 5, out=tmp_path / "b").path == long.path
