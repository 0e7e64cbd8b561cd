"""Bootstrap confidence intervals over structures (seeded, percentile method).

A statistic is a function of the indices of the structures it uses: the point
value is the statistic of every structure, each resample draws as many indices
with replacement. Pure numpy; deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import CheckError

Statistic = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Interval:
    """A point value, its percentile bootstrap interval and the resampled values."""

    point: float
    low: float
    high: float
    level: float
    n_resamples: int
    samples: np.ndarray = field(repr=False, compare=False)  # (n_resamples,) statistic per resample, NaN kept

    def gated(self, on: str) -> float:
        """The value a bound compares: 'point', 'ci_low' or 'ci_high'."""
        if on == "point":
            return self.point
        if on == "ci_low":
            return self.low
        if on == "ci_high":
            return self.high
        raise CheckError(f"unknown interval end {on!r}; use point, ci_low or ci_high")

    def share(self, admits: Callable[[float], bool]) -> float:
        """Share of the resamples whose value passes `admits` (a NaN resample never passes)."""
        return float(np.mean([admits(float(v)) for v in self.samples])) if self.samples.size else float("nan")

    def to_json(self) -> dict[str, Any]:
        def finite(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return {"ci_low": finite(self.low), "ci_high": finite(self.high), "level": self.level,
                "n_resamples": self.n_resamples}


def bootstrap(statistic: Statistic, n: int, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap of `statistic` over `n` structures.

    Resamples whose statistic is not finite (e.g. a ratio over a resample of
    zeros) are left out of the percentiles but kept in ``samples``; if none is
    finite the interval is NaN.
    """
    if n < 1:
        raise CheckError("bootstrap needs at least one structure")
    if n_resamples < 1:
        raise CheckError(f"bootstrap needs n_resamples >= 1, got {n_resamples}")
    if not 0 < level < 1:
        raise CheckError(f"bootstrap level must be in (0, 1), got {level}")
    point = float(statistic(np.arange(n)))
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, n, size=(n_resamples, n))
    samples = np.array([float(statistic(row)) for row in indices], dtype=float)
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        low = high = float("nan")
    else:
        tail = (1.0 - level) / 2.0
        low, high = (float(v) for v in np.quantile(finite, [tail, 1.0 - tail]))
    return Interval(point=point, low=low, high=high, level=level, n_resamples=n_resamples, samples=samples)


def ratio_of_means(numerator: np.ndarray, denominator: np.ndarray) -> Statistic:
    """Statistic: mean(numerator[idx]) / mean(denominator[idx]) (inf when only the denominator is 0)."""
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if num.shape != den.shape or num.ndim != 1:
        raise CheckError(f"ratio_of_means needs two 1-D arrays of one length, got {num.shape} and {den.shape}")

    def statistic(idx: np.ndarray) -> float:
        a, b = float(np.mean(num[idx])), float(np.mean(den[idx]))
        if b == 0.0:
            return float("inf") if a > 0 else float("nan")
        return a / b

    return statistic


def nanmean_of(values: np.ndarray) -> Statistic:
    """Statistic: mean of the finite values[idx] (NaN if none)."""
    arr = np.asarray(values, dtype=float)

    def statistic(idx: np.ndarray) -> float:
        picked = arr[idx]
        picked = picked[np.isfinite(picked)]
        return float(np.mean(picked)) if picked.size else float("nan")

    return statistic
