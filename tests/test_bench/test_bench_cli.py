"""Bad bench arguments stop with one line naming the bad value; the event file is prefix-stable."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from fixtures import usage_error

from bench.cli import BenchError
from bench.events import ensure_events, read_events
from bench.harness import PEER_PACKAGES, RUN_ORDER, check_peers, parse_args
from bench.meter import child_meter, child_parser
from bench.plot import COLOURS, SHORT
from bench.report import LABELS
from bench.stats import PEERS, SYSTEMS
from bench.status import read_status


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


def test_every_system_runs_is_skippable_and_labelled() -> None:
    assert sorted(RUN_ORDER) == sorted(SYSTEMS)
    assert RUN_ORDER[0] == "monitor"  # it alone gets the file's backlog without a latency slice
    assert set(LABELS) == set(COLOURS) == set(SHORT) == set(SYSTEMS)
    assert set(PEER_PACKAGES) == set(PEERS)
    assert parse_args(["--skip", "bytewax,pathway"]).skip == ["bytewax", "pathway"]


def test_a_missing_peer_package_is_one_line_naming_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    check_peers(["monitor", "ceiling"])  # nothing to install for these
    with pytest.raises(BenchError) as raised:
        check_peers(["monitor", "bytewax", "pathway"])
    assert str(raised.value) == ("bytewax is not installed (the bytewax peer): "
                                 "`.venv/bin/pip install 'bytewax[kafka]==0.21.1'`, or --skip bytewax")  # fmt: skip
    installed: dict[str, Any] = {"bytewax": object(), "pathway": None}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: installed.get(name, object()))
    with pytest.raises(BenchError, match=r"^pathway is not installed .*'pathway==0.33.0'`, or --skip pathway$"):
        check_peers(["bytewax", "pathway"])
    installed["pathway"] = object()
    check_peers(list(PEERS))


def test_every_measured_child_takes_the_counting_arguments_and_says_it_is_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = child_parser("bench.some_peer", None)
    parser.add_argument("--group", required=True)
    status = tmp_path / "peer.status.json"
    args = parser.parse_args(["--bootstrap", "127.0.0.1:9092", "--topics", "a,b", "--group", "g",
                              "--expect", "1_000", "--extra", "50", "--status", str(status)])  # fmt: skip
    meter = child_meter(args)
    assert (meter.expect, meter.target, meter.seen) == (1000, 1050, 0)
    assert read_status(status)["phase"] == "starting"
    bad = ["--bootstrap", "b", "--topics", "a", "--group", "g", "--expect", "0", "--status", str(status)]
    assert "--expect: 0 is not between 1 and" in usage_error(parser.parse_args, bad, capsys)


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
