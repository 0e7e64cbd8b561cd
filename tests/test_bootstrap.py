"""Bootstrap intervals and gating on them (on: point | ci_low | ci_high; share of resamples)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import CheckError
from harness.explain.bootstrap import Interval, bootstrap, nanmean_of, ratio_of_means
from harness.gate.outcome import judge
from harness.suite.bounds import Bound, IntervalBound


def _mean(values: np.ndarray):
    return lambda idx: float(np.mean(values[idx]))


def test_deterministic_for_a_seed() -> None:
    values = np.random.default_rng(0).normal(size=50)
    a = bootstrap(_mean(values), 50, n_resamples=200, seed=3)
    b = bootstrap(_mean(values), 50, n_resamples=200, seed=3)
    c = bootstrap(_mean(values), 50, n_resamples=200, seed=4)
    assert (a.point, a.low, a.high) == (b.point, b.low, b.high)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)


@pytest.mark.parametrize("seed", range(5))
def test_interval_contains_the_point_and_has_the_textbook_width(seed: int) -> None:
    n = 400
    values = np.random.default_rng(seed).normal(size=n)
    interval = bootstrap(_mean(values), n, n_resamples=2000, level=0.95, seed=seed)
    assert interval.point == pytest.approx(values.mean())
    assert interval.low < interval.point < interval.high
    # mean of n standard normals: half-width 1.96 * s / sqrt(n)
    expected = 1.96 * values.std() / np.sqrt(n)
    assert (interval.high - interval.low) / 2 == pytest.approx(expected, rel=0.1)


def test_level_orders_the_intervals() -> None:
    values = np.random.default_rng(1).exponential(size=100)
    wide = bootstrap(_mean(values), 100, n_resamples=1000, level=0.99, seed=0)
    narrow = bootstrap(_mean(values), 100, n_resamples=1000, level=0.5, seed=0)
    assert wide.low < narrow.low < narrow.point < narrow.high < wide.high


def test_ratio_of_means_and_nanmean_known_answers() -> None:
    stat = ratio_of_means(np.array([2.0, 4.0]), np.array([1.0, 1.0]))
    assert stat(np.array([0, 1])) == 3.0
    assert stat(np.array([1, 1])) == 4.0
    assert ratio_of_means(np.array([1.0]), np.array([0.0]))(np.array([0])) == float("inf")
    assert np.isnan(ratio_of_means(np.array([0.0]), np.array([0.0]))(np.array([0])))
    mean = nanmean_of(np.array([1.0, np.nan, 3.0]))
    assert mean(np.array([0, 1, 2])) == 2.0 and np.isnan(mean(np.array([1, 1])))


def test_non_finite_resamples_are_left_out_of_the_percentiles() -> None:
    values = np.array([0.0, 0.0, 1.0, 1.0])
    interval = bootstrap(ratio_of_means(values, values), 4, n_resamples=300, seed=0)
    assert interval.point == 1.0
    assert np.isnan(interval.samples).any()  # resamples of only zeros
    assert interval.low == interval.high == 1.0


def test_gate_on_ci_low_fails_where_the_point_passes() -> None:
    values = np.random.default_rng(2).normal(loc=1.0, scale=1.0, size=40)
    interval = bootstrap(_mean(values), 40, n_resamples=1000, seed=0)
    threshold = (interval.low + interval.point) / 2  # between the low end and the point value
    on_point = judge("x", IntervalBound(min=threshold), interval)
    on_low = judge("x", IntervalBound(min=threshold, on="ci_low"), interval)
    on_high = judge("x", IntervalBound(max=threshold, on="ci_high"), interval)
    assert on_point.passed and not on_low.passed and not on_high.passed
    assert on_low.value == interval.point  # the point is reported; the interval decides
    doc = on_low.to_json()
    assert doc["on"] == "ci_low" and doc["ci_low"] == interval.low and doc["ci_high"] == interval.high
    assert doc["level"] == 0.95 and doc["passed"] is False
    assert IntervalBound(min=threshold, on="ci_low").describe().endswith("on ci_low")


def test_share_of_resamples() -> None:
    values = np.random.default_rng(3).normal(loc=1.0, scale=1.0, size=40)
    interval = bootstrap(_mean(values), 40, n_resamples=1000, seed=0)
    threshold = float(np.quantile(interval.samples, 0.2))  # 80 % of resamples are above it
    m = judge("x", IntervalBound(min=threshold), interval)
    assert m.resample_share == pytest.approx(0.8, abs=0.002)
    assert judge("x", IntervalBound(min=threshold, min_resample_share=0.75), interval).passed
    assert not judge("x", IntervalBound(min=threshold, min_resample_share=0.9), interval).passed


def test_plain_values_cannot_gate_on_an_interval_end() -> None:
    assert judge("x", IntervalBound(min=1.0), 2.0).passed
    assert judge("x", Bound(min=1.0), 2.0).to_json().keys() == {
        "metric", "value", "min", "max", "passed", "evaluated"
    }
    with pytest.raises(CheckError, match="no bootstrap interval"):
        judge("x", IntervalBound(min=1.0, on="ci_low"), 2.0)


def test_invalid_arguments() -> None:
    with pytest.raises(CheckError):
        bootstrap(lambda idx: 0.0, 0)
    with pytest.raises(CheckError):
        bootstrap(lambda idx: 0.0, 3, level=1.0)
    with pytest.raises(CheckError):
        Interval(1.0, 0.0, 2.0, 0.95, 1, np.zeros(1)).gated("median")
