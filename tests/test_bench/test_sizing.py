"""The sizing model: the fit of a worker's memory, and the workers, partitions and memory it derives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.sizing import Costs, costs, fit, main, size

COSTS = Costs(fixed_bytes=150e6, idle_bytes=90e6, customer_bytes=1_400, cpu_us_per_event=165)


@given(st.floats(0, 1e9), st.floats(1e6, 1e10), st.lists(st.integers(1, 64), min_size=2, unique=True))
def test_fit_recovers_fixed_and_shared_parts(fixed: float, shared: float, sizes: list[int]) -> None:
    got_fixed, got_shared = fit([(n, fixed + shared / n) for n in sizes])
    assert got_fixed == pytest.approx(fixed, rel=1e-6, abs=1.0)
    assert got_shared == pytest.approx(shared, rel=1e-6)


def test_fit_needs_two_cluster_sizes() -> None:
    with pytest.raises(ValueError, match="two cluster sizes"):
        fit([(2, 1.0), (2, 2.0)])


@given(st.integers(1_000, 10**9), st.integers(1, 10**7))
def test_a_size_fits_its_pods_cores_and_partitions(customers: int, rate: int) -> None:
    pod = 8 * 2**30
    s = size(COSTS, customers, rate, utilisation=0.7, pod_bytes=pod, per_partition=100_000)
    assert s.worker_bytes <= pod
    assert s.worker_cores <= 0.7 + 1e-9
    assert s.partitions >= 2 * s.workers
    assert s.partitions >= customers / 100_000
    assert s.partitions & (s.partitions - 1) == 0  # a power of two


def test_costs_from_the_largest_worker_of_each_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"workers": n, "customers": 100_000, "growth_max": (50e6 + 100e6 / n) / 100_000,
             "rss_idle_bytes": [90e6] * n, "cpu_us_per_event": cpu}
            for n, cpu in ((1, 100), (2, 110), (4, 90))]  # fmt: skip
    c = costs({"workers": rows})
    assert c.fixed_bytes == pytest.approx(50e6)
    assert c.customer_bytes == pytest.approx(1_000)
    assert c.cpu_us_per_event == 100
    path = tmp_path / "workers.json"
    path.write_text(json.dumps({"workers": rows}))
    assert main(["--input", str(path), "--markdown"]) == 0
    assert "| 100,000,000 | 1,000,000 |" in capsys.readouterr().out
