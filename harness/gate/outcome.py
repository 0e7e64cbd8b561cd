"""What a check yields: measured values against thresholds, and the outcome of one check on one model.

A measurement may carry a bootstrap :class:`~harness.explain.bootstrap.Interval`; an
:class:`~harness.suite.bounds.IntervalBound` then gates the point value or an end of
the interval (``on``), and optionally the share of resamples that pass.

A value can be *undefined* (an absent element, constant scores, too few
structures, ...): the measurement then holds NaN with ``undefined_reason``, is
written as ``null`` with that reason, and fails its threshold.

An outcome has one of three states (:attr:`CheckOutcome.status`): ``pass``,
``fail`` or ``inconclusive``. A SHAP-level check whose surrogate does not
explain the model's error (its R^2 below the check's bound: ``unexplained``)
cannot judge any feature; its ``if_unexplained`` policy then makes it fail, or
leaves it ``inconclusive`` (reported so, not failed: ``pass`` and ``skip``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import CheckError, DataError, HarnessError
from harness.explain.bootstrap import Interval
from harness.explain.metrics import why_undefined
from harness.suite.bounds import Bound, IntervalBound
from harness.suite.check_kinds import CheckBase
from harness.suite.schema import check_label

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


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
    undefined_reason: str | None = None  # why the value (or the gated interval end) is undefined; it then fails
    gate: bool = False  # True for the surrogate R^2 that decides whether a SHAP-level check can judge

    @property
    def on(self) -> str:
        return self.bound.on if isinstance(self.bound, IntervalBound) else "point"

    @property
    def undefined(self) -> bool:
        return self.undefined_reason is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "value": None if self.undefined else _finite_or_none(self.value),
            "min": self.bound.min,
            "max": self.bound.max,
            "passed": self.passed,
            "evaluated": self.evaluated,
        }
        if self.undefined_reason is not None:
            out["undefined_reason"] = self.undefined_reason
        if self.gate:
            out["gate"] = True
        if getattr(self.bound, "spread", None) is not None:  # a measured spread: flag a value within 3 spreads
            out["spread"] = self.bound.spread
            out["fragile"] = is_fragile(self)
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
    reason: str | None = None  # why it failed beyond the numbers (e.g. a top feature of the wrong pair)
    details: dict[str, Any] = field(default_factory=dict)
    unexplained: str | None = None  # why the surrogate is not evidence (R^2 below its bound), if it is not
    if_unexplained: str | None = None  # the check's policy then: "fail", "pass" or "skip"

    @property
    def status(self) -> str:
        """'pass', 'fail' or 'inconclusive' (an unexplained error under an if_unexplained of pass or skip)."""
        if self.unexplained is None:
            return PASS if self.reason is None and all(m.passed for m in self.measurements) else FAIL
        # the gate's own failure and the values it left unjudged are the policy's to decide; anything else fails
        other = [m for m in self.measurements if m.evaluated and not m.gate]
        if self.reason is not None or not all(m.passed for m in other):
            return FAIL
        return FAIL if self.if_unexplained in (None, FAIL) else INCONCLUSIVE

    @property
    def passed(self) -> bool:
        """Not failed: a pass or an inconclusive outcome (the gate does not fail on it)."""
        return self.status != FAIL

    @property
    def failure_reason(self) -> str | None:
        """Why the check failed beyond its measurements (its reason, or an unexplained error under 'fail')."""
        if self.reason is not None:
            return self.reason
        if self.status == FAIL and self.unexplained is not None and self.if_unexplained in (None, FAIL):
            return self.unexplained
        return None

    @property
    def inconclusive_part(self) -> bool:
        """The SHAP part could not be judged and its policy does not fail it (the check may still fail elsewhere)."""
        return self.unexplained is not None and self.if_unexplained not in (None, FAIL)

    def failures(self) -> list[Measurement]:
        return [m for m in self.measurements if not m.passed]

    def to_json(self) -> dict[str, Any]:
        out = {
            "check": self.check,
            "kind": self.kind,
            "model": self.model,
            "line": self.line,
            "passed": self.passed,
            "status": self.status,
            "reason": self.failure_reason,
            "measurements": [m.to_json() for m in self.measurements],
            "details": self.details,
        }
        if self.unexplained is not None:
            out["unexplained"] = self.unexplained
            out["if_unexplained"] = self.if_unexplained
        return out


def could_not_run(check: CheckBase, model: str, error: BaseException, *, line: int = 0) -> CheckOutcome:
    """The failed outcome of a check that raised instead of measuring (bad data, a model that will not load, a bug).

    Its reason is ``could not run: <the error in one line>``; each metric the
    check gates is recorded undefined (null, failed), so a results document, its
    table, HTML, diff and history show the check as failed, never as passed or
    absent. The plugin and the sweep both record it (harness.pytest_plugin.items, harness.sweep.task).
    """
    text = " ".join(str(error).split()) or "(no message)"
    if not isinstance(error, HarnessError):
        text = f"unexpected {type(error).__name__}: {text[:297] + '...' if len(text) > 300 else text}"
    reason = f"could not run: {text}"
    try:
        bounds = check.bounds()
    except Exception:  # noqa: BLE001 - the reason alone still fails the outcome
        bounds = {}
    measured = tuple(
        Measurement(metric, float("nan"), bound, False, undefined_reason="the check could not run")
        for metric, bound in bounds.items()
    )
    kind = str(getattr(check, "kind", type(check).__name__))
    return CheckOutcome(check_label(check), kind, model, line, measured, reason=reason)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def judge(
    metric: str, bound: Bound, value: float | Interval, *, evaluated: bool = True, gate: bool = False
) -> Measurement:
    """A measurement of a plain value or of an interval, judged by its bound; an undefined value fails."""
    if isinstance(value, Interval):
        on = bound.on if isinstance(bound, IntervalBound) else "point"
        gated = value.gated(on)
        share = value.share(bound.admits)
        why = why_undefined(value.point)
        if why is None and on != "point":
            why = why_undefined(gated)
            why = None if why is None else f"the bootstrap interval's {on} is {why}: no finite resample"
        passed = why is None and bound.admits(gated)
        if isinstance(bound, IntervalBound) and bound.min_resample_share is not None:
            passed = passed and share == share and share >= bound.min_resample_share
        return Measurement(metric, value.point, bound, evaluated and passed, evaluated, value, share, why, gate)
    if isinstance(bound, IntervalBound) and (bound.on != "point" or bound.min_resample_share is not None):
        raise CheckError(f"metric {metric!r} has no bootstrap interval: it can only gate on the point value")
    why = why_undefined(value)
    number = float(value)
    passed = why is None and bound.admits(number)
    return Measurement(metric, number, bound, evaluated and passed, evaluated, undefined_reason=why, gate=gate)


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


FRAGILE_FACTOR = 3.0



def margin(bound_min: float | None, bound_max: float | None, value: float) -> float:
    """Signed distance from ``value`` to the nearest end of [min, max]: positive inside, negative outside."""
    ends = []
    if bound_min is not None:
        ends.append(value - bound_min)
    if bound_max is not None:
        ends.append(bound_max - value)
    if not ends:
        raise DataError("a bound needs 'min' or 'max'")
    return min(ends) if math.isfinite(value) else float("nan")



def gated_value(measurement: Any) -> float:
    """The value a measurement's bound compares: the point value or the interval end it gates on."""
    interval = getattr(measurement, "interval", None)
    if interval is not None:
        return float(interval.gated(measurement.on))
    return float(measurement.value)



def is_fragile(measurement: Any) -> bool:
    """True when the bound records a spread and the gated value lies within FRAGILE_FACTOR spreads of it."""
    bound = measurement.bound
    spread = getattr(bound, "spread", None)
    if spread is None:
        return False
    m = margin(bound.min, bound.max, gated_value(measurement))
    return not (m >= FRAGILE_FACTOR * spread)  # NaN counts as fragile
