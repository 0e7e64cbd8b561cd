"""`mlff-harness calibrate`: propose every threshold of a suite from good and must-fail models.

Each model is evaluated as the suite's candidate by the same code the gate
runs (:class:`~harness.gate.session.SuiteRun` and :func:`~harness.gate.checks.run_check`),
and every bounded metric's value is collected per model. The rule, per metric,
keeps the direction the suite gives it (``max``: lower is better; ``min``:
higher is better; both: two-sided):

* the *worst good value* w is the largest (for ``max``) or smallest (for
  ``min``) value over the good models;
* the bound is w widened by the relative margin, ``w + margin * |w|`` (for
  ``max``; mirrored for ``min``; when w = 0 the margin is taken of the gap to
  the nearest must-fail value);
* but never past the midpoint between w and the nearest must-fail value
  beyond it, so the bound stays on the good side of every must-fail model it
  separates ("capped" in the table);
* a must-fail value closer to w than twice ``min_margin * |w|`` (default 5 %)
  is *too close*: no bound could keep a safe distance from both, so it is
  neither capped against nor counted as caught (it is listed as too close);
* then rounded outwards to 3 significant digits when that changes no outcome.

A must-fail model is *caught* by a metric when its value lies beyond the
proposed bound and is not too close, or is undefined (an undefined gated value
fails its check).
Calibration refuses (exit 1, one line per problem): a check that catches no
must-fail model (it cannot separate them from the good ones; ``--guard CHECK``
keeps such a check, bounded from the good models only, e.g. an RMSE guard); a
must-fail model that no check catches; a metric undefined for a good model; a
good model that a check fails by its rule (e.g. ``top_feature_pair``).

The surrogate's R^2 (``surrogate_cv_r2``, ``heldout_r2``) says whether the
SHAP level is evidence; it is not a property to tune, so calibration keeps its
bound and reports its values. A value a check did not judge (its surrogate
below that bar) is shown as ``n/j`` and used for nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import CheckError, ModelError, SuiteError
from harness.suite.bounds import CANDIDATE, Bound
from harness.suite.loader import LoadedSuite
from harness.suite.schema import check_label

GATE_METRICS = frozenset({"surrogate_cv_r2", "heldout_r2"})
DEFAULT_MARGIN = 0.2
DEFAULT_MIN_MARGIN = 0.05


@dataclass(frozen=True)
class Value:
    """One model's value of one metric: a number, or None with why."""

    value: float | None
    note: str | None = None  # "undefined: ...", "not judged", "error: ..."

    @property
    def judged(self) -> bool:
        return self.note is None or self.note.startswith("undefined")

    def text(self) -> str:
        if self.value is not None:
            return f"{self.value:.4g}"
        return "n/j" if not self.judged else "null"


@dataclass(frozen=True)
class Proposal:
    """A proposed bound and how it was reached."""

    bound: Bound | None
    worst_good: dict[str, float]  # side -> w
    margin: dict[str, float]  # side -> |bound - w| / |w| (or absolute when w = 0)
    capped: tuple[str, ...]  # sides where the midpoint cap bit
    catches: tuple[str, ...]  # must-fail models beyond the bound (or undefined)
    too_close: tuple[str, ...] = ()  # must-fail models beyond w by less than 2 * min_margin * |w|


@dataclass
class Row:
    """One bounded metric of one check across the models."""

    index: int
    check: str
    kind: str
    metric: str
    current: Bound
    good: dict[str, Value] = field(default_factory=dict)
    must_fail: dict[str, Value] = field(default_factory=dict)
    proposal: Proposal | None = None
    problem: str | None = None
    gate: bool = False  # the check marks this measurement as the evidence gate of its SHAP level

    @property
    def fixed(self) -> bool:
        return self.gate or self.metric in GATE_METRICS


@dataclass
class Calibration:
    """Everything `calibrate` measured and proposes; ``problems`` empty means accepted."""

    suite: Path
    margin: float
    models: dict[str, dict[str, str]]  # name -> {role, path, sha256}
    rows: list[Row]
    rule_failures: dict[str, dict[str, str]]  # check -> model -> reason
    problems: list[str]
    notes: list[str]

    def caught_by(self, model: str) -> list[str]:
        checks = [r.check for r in self.rows if r.proposal and model in r.proposal.catches]
        checks += [c for c, failed in self.rule_failures.items() if model in failed]
        return list(dict.fromkeys(checks))


def _round_out(x: float, side: str) -> float:
    """x rounded to 3 significant digits away from the good side (up for max, down for min)."""
    if x == 0 or not math.isfinite(x):
        return x
    exponent = math.floor(math.log10(abs(x))) - 2
    q = x / 10.0**exponent
    q = math.ceil(q - 1e-9) if side == "max" else math.floor(q + 1e-9)  # 2.4 stays 2.4, not 2.41
    return float(f"{q}e{exponent}")


def propose(
    sides: Sequence[str],
    good: Sequence[float],
    must_fail: dict[str, float | None],
    margin: float,
    min_margin: float = DEFAULT_MIN_MARGIN,
) -> Proposal:
    """The bound of one metric from the good values and the must-fail values (None = undefined); pure."""
    if not good:
        raise ValueError("no good value to calibrate from")
    bound: dict[str, float] = {}
    worst: dict[str, float] = {}
    used: dict[str, float] = {}
    capped: list[str] = []
    close: set[str] = set()
    for side in sides:
        sign = 1.0 if side == "max" else -1.0  # work as if larger were worse
        w = max(sign * g for g in good)
        needed = 2 * min_margin * abs(w)
        beyond = {n: sign * v - w for n, v in must_fail.items() if v is not None and sign * v > w}
        close |= {n for n, d in beyond.items() if d < needed}
        eligible = sorted(d for n, d in beyond.items() if n not in close)
        gap = eligible[0] if eligible else None
        delta = margin * abs(w) if abs(w) > 1e-12 else margin * (gap or 0.0)
        if gap is not None and delta > gap / 2:
            delta = gap / 2
            capped.append(side)
        b = w + delta
        rounded = _round_out(b, "max")  # towards the bad side, in this larger-is-worse frame
        if b <= rounded and (gap is None or rounded < w + gap):
            b = rounded
        bound[side], worst[side] = sign * b, sign * w
        used[side] = abs(b - w) / abs(w) if abs(w) > 1e-12 else abs(b - w)
    result = Bound(min=bound.get("min"), max=bound.get("max"))
    catches = tuple(n for n, v in must_fail.items() if v is None or (not result.admits(v) and n not in close))
    return Proposal(result, worst, used, tuple(capped), catches, tuple(n for n in must_fail if n in close))


def _sides(bound: Bound) -> list[str]:
    return [side for side in ("min", "max") if getattr(bound, side) is not None]


def _value(measurement: Any) -> Value:
    if not getattr(measurement, "evaluated", True):
        return Value(None, "not judged")
    reason = getattr(measurement, "undefined_reason", None)
    value = float(measurement.value)
    interval, on = getattr(measurement, "interval", None), getattr(measurement, "on", "point")
    if interval is not None and on != "point":
        value = float(interval.gated(on))
    if reason is not None or not math.isfinite(value):
        return Value(None, f"undefined: {reason or 'not a finite number'}")
    return Value(value)


def _model_names(paths: Sequence[Path], taken: set[str]) -> list[str]:
    names = []
    for path in paths:
        base = re.sub(r"(\.gz|\.model|\.pt|\.safetensors)+$", "", path.name) or path.name
        name, k = base, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name)
        names.append(name)
    return names


def calibrate(
    loaded: LoadedSuite,
    good: Sequence[Path | str],
    must_fail: Sequence[Path | str],
    *,
    margin: float = DEFAULT_MARGIN,
    min_margin: float = DEFAULT_MIN_MARGIN,
    guards: Sequence[str] = (),
    cache_dir: Path | None = None,
    device: str = "cpu",
    dtype: str | None = None,
) -> Calibration:
    """Measure every check on every model and propose thresholds (see the module docstring)."""
    from harness.files import sha256_file
    from harness.gate.checks import run_check
    from harness.gate.session import RunOptions, SuiteRun

    if not good:
        raise SuiteError("calibration needs at least one good model (--good)")
    if not must_fail:
        raise SuiteError("calibration needs at least one must-fail model (--must-fail)")
    if not 0 <= margin <= 10 or not math.isfinite(margin):
        raise SuiteError(f"--margin {margin} must be between 0 and 10 (a relative widening, e.g. 0.2)")
    if not 0 <= min_margin <= margin:
        raise SuiteError(f"--min-margin {min_margin} must be between 0 and the margin ({margin})")
    labels = [check_label(c) for c in loaded.suite.checks]
    unknown = [g for g in guards if g not in labels]
    if unknown:
        raise SuiteError(f"--guard {', '.join(unknown)}: no such check; the checks are {', '.join(labels)}")
    good_paths, bad_paths = [Path(p) for p in good], [Path(p) for p in must_fail]
    for path in good_paths + bad_paths:
        if not path.is_file():
            raise ModelError(f"checkpoint {path}: {'not a file' if path.exists() else 'not found'}")
    taken: set[str] = set()
    roles = {n: ("good", p) for n, p in zip(_model_names(good_paths, taken), good_paths, strict=True)}
    roles.update({n: ("must-fail", p) for n, p in zip(_model_names(bad_paths, taken), bad_paths, strict=True)})

    rows: dict[tuple[int, str], Row] = {}
    rule_failures: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    notes: list[str] = []
    models: dict[str, dict[str, str]] = {}
    for name, (role, path) in roles.items():
        sha = sha256_file(path)  # naming a file on the command line trusts it; the pin guards against a swap mid-run
        models[name] = {"role": role, "path": str(path), "sha256": sha}
        options = RunOptions(
            candidate=path, candidate_sha256=sha, device=device,  # type: ignore[arg-type]
            dtype=dtype, cache_dir=cache_dir, progress=False,  # type: ignore[arg-type]
        )
        run = SuiteRun(loaded, options)
        for index, check in enumerate(loaded.suite.checks):
            label = check_label(check)
            if CANDIDATE not in loaded.suite.models_for(check):
                if name == next(iter(roles)):
                    notes.append(f"check {label!r} does not run on the candidate; not calibrated")
                continue
            try:
                outcome = run_check(check, CANDIDATE, run, line=loaded.check_line(index))
            except CheckError as err:
                problems.append(f"check {label!r} could not be measured on {role} model {name}: {err}")
                continue
            # incl. an unexplained error under if_unexplained: fail
            reason = getattr(outcome, "failure_reason", outcome.reason)
            if reason is not None:
                rule_failures.setdefault(label, {})[name] = reason
            for m in outcome.measurements:
                row = rows.setdefault(
                    (index, m.metric),
                    Row(index, label, check.kind, m.metric, m.bound, gate=bool(getattr(m, "gate", False))),
                )
                (row.good if role == "good" else row.must_fail)[name] = _value(m)
    result = Calibration(loaded.path, margin, models, list(rows.values()), rule_failures, problems, notes)
    _propose_all(result, margin, set(guards), min_margin)
    return result


def _propose_all(cal: Calibration, margin: float, guards: set[str], min_margin: float = DEFAULT_MIN_MARGIN) -> None:
    for row in cal.rows:
        if row.fixed:
            low = [
                n for n, v in {**row.good, **row.must_fail}.items()
                if v.value is not None and not row.current.admits(v.value)
            ]
            if low:
                cal.notes.append(
                    f"check {row.check!r}: {row.metric} is outside its kept bound {row.current.describe()} for "
                    f"{', '.join(low)}: its SHAP level is not evidence there (the check's if_unexplained decides)"
                )
            continue
        undefined = [n for n, v in row.good.items() if v.judged and v.value is None]
        if undefined:
            row.problem = (
                f"check {row.check!r}: {row.metric} is undefined for good model(s) {', '.join(undefined)} "
                f"({row.good[undefined[0]].note}); it cannot be calibrated"
            )
            cal.problems.append(row.problem)
            continue
        good = [v.value for v in row.good.values() if v.value is not None]
        if not good:
            row.problem = (
                f"check {row.check!r}: {row.metric} was not judged on any good model (their surrogate R^2 is below "
                "the evidence bar, so the SHAP level says nothing on these data); remove the check"
            )
            cal.problems.append(row.problem)
            continue
        judged = {n: v.value for n, v in row.must_fail.items() if v.judged}
        row.proposal = propose(_sides(row.current), good, judged, margin, min_margin)
    for check, failed in cal.rule_failures.items():
        for model, reason in failed.items():
            if cal.models[model]["role"] == "good":
                cal.problems.append(f"check {check!r} fails good model {model} by its rule: {reason}")
    bad = [n for n, m in cal.models.items() if m["role"] == "must-fail"]
    for check in dict.fromkeys(r.check for r in cal.rows):
        caught = {n for n in bad if check in cal.caught_by(n)}
        if caught or check in guards or any(r.problem for r in cal.rows if r.check == check):
            continue
        parts = []
        for r in cal.rows:
            if r.check == check and r.proposal is not None:
                worst = ", ".join(f"{s} {v:.4g}" for s, v in r.proposal.worst_good.items())
                values = ", ".join(f"{n} {v.text()}" for n, v in r.must_fail.items())
                parts.append(f"{r.metric}: worst good {worst}, must-fail {values}")
        cal.problems.append(
            f"check {check!r} cannot separate the good from the must-fail models "
            f"({'; '.join(parts) or 'no calibrated metric'}); "
            f"drop it, change its metrics, or keep it with --guard {check}"
        )
    for model in bad:
        if not cal.caught_by(model):
            cal.problems.append(f"must-fail model {model} ({cal.models[model]['path']}) is caught by no check")
