"""What a check yields: measured values against thresholds, and the outcome of one check on one model.

A measurement may carry a bootstrap :class:`~harness.bootstrap.Interval`; an
:class:`~harness.schema.IntervalBound` then gates the point value or an end of
the interval (``on``), and optionally the share of resamples that pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.bootstrap import Interval
from harness.errors import CheckError
from harness.schema import Bound, CheckBase, IntervalBound


@dataclass(frozen=True)
class Measurement:
    """One measured value against its threshold."""

    metric: str
    value: float  # the point value
    bound: Bound
    passed: bool
    evaluated: bool = True  # False when a gate (e.g. surrogate R^2) made the value meaningless
    interval: Interval | None = None
    resample_share: float | None = None  # share of bootstrap resamples inside the bound

    @property
    def on(self) -> str:
        return self.bound.on if isinstance(self.bound, IntervalBound) else "point"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "value": _finite_or_none(self.value),
            "min": self.bound.min,
            "max": self.bound.max,
            "passed": self.passed,
            "evaluated": self.evaluated,
        }
        if self.interval is not None:
            out.update(self.interval.to_json())
            out["on"] = self.on
            out["resample_share"] = self.resample_share
            if isinstance(self.bound, IntervalBound):
                out["min_resample_share"] = self.bound.min_resample_share
        return out


@dataclass(frozen=True)
class CheckOutcome:
    """The outcome of one check on one model."""

    check: str
    kind: str
    model: str
    line: int
    measurements: tuple[Measurement, ...]
    reason: str | None = None  # why it failed beyond the numbers (e.g. a gate)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.reason is None and all(m.passed for m in self.measurements)

    def failures(self) -> list[Measurement]:
        return [m for m in self.measurements if not m.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "kind": self.kind,
            "model": self.model,
            "line": self.line,
            "passed": self.passed,
            "reason": self.reason,
            "measurements": [m.to_json() for m in self.measurements],
            "details": self.details,
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def judge(metric: str, bound: Bound, value: float | Interval, *, evaluated: bool = True) -> Measurement:
    """A measurement of a plain value or of an interval, judged by its bound."""
    if isinstance(value, Interval):
        gated = value.gated(bound.on) if isinstance(bound, IntervalBound) else value.point
        share = value.share(bound.admits)
        passed = bound.admits(gated)
        if isinstance(bound, IntervalBound) and bound.min_resample_share is not None:
            passed = passed and share == share and share >= bound.min_resample_share
        return Measurement(metric, value.point, bound, evaluated and passed, evaluated, value, share)
    if isinstance(bound, IntervalBound) and (bound.on != "point" or bound.min_resample_share is not None):
        raise CheckError(f"metric {metric!r} has no bootstrap interval: it can only gate on the point value")
    value = float(value)
    return Measurement(metric, value, bound, evaluated and bound.admits(value), evaluated)


def measure(
    check: CheckBase, values: Mapping[str, float | Interval], *, evaluated: bool = True
) -> list[Measurement]:
    """One measurement per bounded metric of the check."""
    out = []
    for metric, bound in check.bounds().items():
        if metric not in values:
            raise CheckError(f"check kind {check.kind!r} does not compute {metric!r}")  # type: ignore[attr-defined]
        out.append(judge(metric, bound, values[metric], evaluated=evaluated))
    return out
