"""ABC classes: the smallest top set reaching 80 % is A, up to 95 % B, the rest C."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.abc_classes import CLASSES, classify, classify_arrays, summarize


def test_golden_classes() -> None:
    clv = {b"a": 500, b"b": 300, b"c": 100, b"d": 60, b"e": 40, b"f": 0, b"g": -10}
    classes = classify(clv)
    # cumulative before each: a 0, b 500 (<800 -> A), c 800 (>=800 -> B), d 900 (<950 -> B), e 960 -> C
    assert classes == {b"a": "A", b"b": "A", b"c": "B", b"d": "B", b"e": "C", b"f": "C", b"g": "C"}
    summary = summarize(clv, classes, unit=1)
    assert summary.customers == {"A": 2, "B": 2, "C": 3}
    assert summary.clv_share == {"A": 0.8, "B": 0.16, "C": 0.04}
    assert summary.total_clv == 1000


def test_no_revenue_means_everyone_is_c() -> None:
    assert set(classify({b"a": 0, b"b": -5}).values()) == {"C"}
    assert summarize({}, {}).clv_share == {"A": None, "B": None, "C": None}


@given(st.dictionaries(st.binary(min_size=1, max_size=3), st.integers(-100, 1000), max_size=40))
def test_a_is_the_smallest_top_set_reaching_80_percent(clv: dict[bytes, int]) -> None:
    classes = classify(clv)
    total = sum(v for v in clv.values() if v > 0)
    a_sum = sum(clv[k] for k, c in classes.items() if c == "A")
    if total > 0:
        assert a_sum >= 0.8 * total
        smallest_a = min(clv[k] for k, c in classes.items() if c == "A")
        assert a_sum - smallest_a < 0.8 * total  # dropping any A customer falls short
    assert all(clv[k] > 0 for k, c in classes.items() if c in "AB")


def _reference(clv: dict[int, int], thresholds: tuple[float, float]) -> dict[int, str]:
    """The definition, step by step: rank positive CLVs (ties by key), close A and B at the thresholds."""
    ranked = sorted(((v, k) for k, v in clv.items() if v > 0), key=lambda vk: (-vk[0], vk[1]))
    total = sum(v for v, _ in ranked)
    out, cumulative = dict.fromkeys(clv, "C"), 0
    for value, key in ranked:
        out[key] = "A" if cumulative < thresholds[0] * total else "B" if cumulative < thresholds[1] * total else "C"
        cumulative += value
    return out


@settings(max_examples=300)
@given(st.dictionaries(st.integers(-(2**62), 2**62), st.integers(-10**6, 10**12), max_size=60),
       st.sampled_from([(0.8, 0.95), (0.5, 0.9), (0.01, 0.02), (0.99, 1.0)]))
def test_vectorised_classes_match_the_definition(clv: dict[int, int], thresholds: tuple[float, float]) -> None:
    assert classify(clv, thresholds) == _reference(clv, thresholds)
    keys = np.array(list(clv), np.int64)
    codes = classify_arrays(keys, np.array(list(clv.values()), np.int64), thresholds)
    assert {k: CLASSES[c] for k, c in zip(clv, codes.tolist(), strict=True)} == _reference(clv, thresholds)
