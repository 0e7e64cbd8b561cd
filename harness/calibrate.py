"""`mlff-harness calibrate`: propose every threshold of a suite from good and must-fail models.

Each model is evaluated as the suite's candidate by the same code the gate
runs (:class:`~harness.session.SuiteRun` and :func:`~harness.checks.run_check`),
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
* then rounded outwards to 3 significant digits when that changes no outcome.

A must-fail model is *caught* by a metric when its value lies beyond the
proposed bound, or is undefined (an undefined gated value fails its check).
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

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import CheckError, ModelError, SuiteError
from harness.loader import LoadedSuite
from harness.schema import CANDIDATE, Bound, check_label

GATE_METRICS = frozenset({"surrogate_cv_r2", "heldout_r2"})
DEFAULT_MARGIN = 0.2


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

    @property
    def fixed(self) -> bool:
        return self.metric in GATE_METRICS


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
    sides: Sequence[str], good: Sequence[float], must_fail: dict[str, float | None], margin: float
) -> Proposal:
    """The bound of one metric from the good values and the must-fail values (None = undefined); pure."""
    if not good:
        raise ValueError("no good value to calibrate from")
    bound: dict[str, float] = {}
    worst: dict[str, float] = {}
    used: dict[str, float] = {}
    capped: list[str] = []
    for side in sides:
        sign = 1.0 if side == "max" else -1.0  # work as if larger were worse
        w = max(sign * g for g in good)
        beyond = sorted(sign * v for v in must_fail.values() if v is not None and sign * v > w)
        gap = beyond[0] - w if beyond else None
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
    catches = tuple(name for name, v in must_fail.items() if v is None or not result.admits(v))
    return Proposal(result, worst, used, tuple(capped), catches)


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
    guards: Sequence[str] = (),
    cache_dir: Path | None = None,
    device: str = "cpu",
    dtype: str | None = None,
) -> Calibration:
    """Measure every check on every model and propose thresholds (see the module docstring)."""
    from harness.checks import run_check
    from harness.reference import sha256_file
    from harness.session import RunOptions, SuiteRun

    if not good:
        raise SuiteError("calibration needs at least one good model (--good)")
    if not must_fail:
        raise SuiteError("calibration needs at least one must-fail model (--must-fail)")
    if not 0 <= margin <= 10 or not math.isfinite(margin):
        raise SuiteError(f"margin {margin} must be between 0 and 10 (a relative widening, e.g. 0.2)")
    labels = [check_label(c) for c in loaded.suite.checks]
    unknown = [g for g in guards if g not in labels]
    if unknown:
        raise SuiteError(f"--guard {', '.join(unknown)}: no such check; the checks are {', '.join(labels)}")
    good_paths, bad_paths = [Path(p) for p in good], [Path(p) for p in must_fail]
    for path in good_paths + bad_paths:
        if not path.is_file():
            raise ModelError(f"checkpoint {path}: {'not a file' if path.exists() else 'not found'}")
    taken: set[str] = set()
    roles = {n: ("good", p) for n, p in zip(_model_names(good_paths, taken), good_paths)}
    roles.update({n: ("must-fail", p) for n, p in zip(_model_names(bad_paths, taken), bad_paths)})

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
            reason = getattr(outcome, "failure_reason", outcome.reason)  # incl. an unexplained error under if_unexplained: fail
            if reason is not None:
                rule_failures.setdefault(label, {})[name] = reason
            for m in outcome.measurements:
                row = rows.setdefault((index, m.metric), Row(index, label, check.kind, m.metric, m.bound))  # type: ignore[attr-defined]
                (row.good if role == "good" else row.must_fail)[name] = _value(m)
    result = Calibration(loaded.path, margin, models, list(rows.values()), rule_failures, problems, notes)
    _propose_all(result, margin, set(guards))
    return result


def _propose_all(cal: Calibration, margin: float, guards: set[str]) -> None:
    for row in cal.rows:
        if row.fixed:
            low = [n for n, v in {**row.good, **row.must_fail}.items() if v.value is not None and not row.current.admits(v.value)]
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
        row.proposal = propose(_sides(row.current), good, judged, margin)
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
            f"({'; '.join(parts) or 'no calibrated metric'}); drop it, change its metrics, or keep it with --guard {check}"
        )
    for model in bad:
        if not cal.caught_by(model):
            cal.problems.append(f"must-fail model {model} ({cal.models[model]['path']}) is caught by no check")


# ------------------------------------------------------------------------------------ output


def to_json(cal: Calibration) -> dict[str, Any]:
    def bound(b: Bound | None) -> dict[str, float | None] | None:
        return None if b is None else {"min": b.min, "max": b.max}

    return {
        "format": "mlff-harness-calibration/1",
        "suite": str(cal.suite),
        "margin": cal.margin,
        "accepted": not cal.problems,
        "models": cal.models,
        "metrics": [
            {
                "check": r.check,
                "kind": r.kind,
                "metric": r.metric,
                "current": bound(r.current),
                "kept": r.fixed,
                "good": {n: {"value": v.value, "note": v.note} for n, v in r.good.items()},
                "must_fail": {n: {"value": v.value, "note": v.note} for n, v in r.must_fail.items()},
                "proposed": bound(r.proposal.bound) if r.proposal else (bound(r.current) if r.fixed else None),
                "worst_good": r.proposal.worst_good if r.proposal else None,
                "margin": r.proposal.margin if r.proposal else None,
                "capped": list(r.proposal.capped) if r.proposal else [],
                "catches": list(r.proposal.catches) if r.proposal else [],
                "problem": r.problem,
            }
            for r in cal.rows
        ],
        "rule_failures": cal.rule_failures,
        "caught_by": {n: cal.caught_by(n) for n, m in cal.models.items() if m["role"] == "must-fail"},
        "problems": cal.problems,
        "notes": cal.notes,
    }


def to_markdown(cal: Calibration) -> str:
    def values(vs: dict[str, Value]) -> str:
        return "; ".join(f"{n} {v.text()}" for n, v in vs.items()) or "-"

    lines = [
        f"# Calibration of `{cal.suite.name}`",
        "",
        "Written by `mlff-harness calibrate` (rule: the worst good value widened by the relative margin "
        f"{cal.margin:g}, capped at the midpoint to the nearest must-fail value beyond it; see `harness/calibrate.py`).",
        "",
        "| model | role | sha256 |",
        "| --- | --- | --- |",
        *[f"| {n} | {m['role']} | `{m['sha256'][:12]}` |" for n, m in cal.models.items()],
        "",
        "| check | metric | bound now | good values | must-fail values | proposed | margin | catches |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in cal.rows:
        if r.fixed:
            proposed, margin, catches = f"{r.current.describe()} (kept: evidence bar)", "-", "-"
        elif r.proposal is None:
            proposed, margin, catches = "refused (below)", "-", "-"
        else:
            p = r.proposal
            proposed = p.bound.describe() if p.bound else "-"
            margin = ", ".join(f"{v:.3g}{' (capped)' if s in p.capped else ''}" for s, v in p.margin.items())
            catches = ", ".join(p.catches) or "none"
        lines.append(
            f"| {r.check} | {r.metric} | {r.current.describe()} | {values(r.good)} | {values(r.must_fail)} "
            f"| {proposed} | {margin} | {catches} |"
        )
    lines += ["", "| must-fail model | caught by |", "| --- | --- |"]
    for n, m in cal.models.items():
        if m["role"] == "must-fail":
            lines.append(f"| {n} | {', '.join(cal.caught_by(n)) or '**nothing**'} |")
    if cal.rule_failures:
        lines += ["", "Failures by a check's rule (not a threshold):"]
        lines += [f"- {c}: {m}: {why}" for c, failed in cal.rule_failures.items() for m, why in failed.items()]
    lines += ["", "**Accepted.**" if not cal.problems else "**Refused:**"]
    lines += [f"- {p}" for p in cal.problems]
    if cal.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in cal.notes]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_suite(cal: Calibration, loaded: LoadedSuite, target: Path, *, record: str) -> None:
    """Write the suite with every proposed bound in place (one-line `{min: ..., max: ...}` bounds only)."""
    import yaml

    from harness.init_suite import PLACEHOLDER, UNCALIBRATED
    from harness.loader import load_suite

    lines = loaded.path.read_text(encoding="utf-8").splitlines()
    for r in cal.rows:
        if r.proposal is None or r.proposal.bound is None:
            continue
        kind = r.kind
        loc = ("checks", r.index, kind, *r.metric.split("."))
        number = loaded.lines.get(loc)
        key = r.metric.split(".")[-1]
        text = lines[number - 1] if number else ""
        match = re.search(rf"(\b{re.escape(key)}\s*:\s*)(\{{[^{{}}]*\}})", text)
        if match is None:
            raise SuiteError(
                f"cannot rewrite the bound of {r.check}.{r.metric} (not a one-line {{min: ..., max: ...}})",
                path=loaded.path, line=number, fix=f"set it by hand from {record}",
            )
        old = yaml.safe_load(match.group(2)) or {}
        new = {("on" if k is True else k): v for k, v in old.items() if k not in ("min", "max")}  # YAML 1.1 reads `on` as True
        b = r.proposal.bound
        body = ", ".join([f"{s}: {getattr(b, s)!r}" for s in ("min", "max") if getattr(b, s) is not None])
        body += "".join(f", {k}: {json.dumps(v)}" for k, v in new.items())
        text = text[: match.start(2)] + "{" + body + "}" + text[match.end(2) :]
        worst = ", ".join(f"{v:.4g}" for v in r.proposal.worst_good.values())
        note = f"# calibrated: worst good {worst}; catches {', '.join(r.proposal.catches) or 'none'}"
        text = text.replace(PLACEHOLDER, note) if PLACEHOLDER in text else f"{text}    {note}"
        lines[number - 1] = text
    out = "\n".join(lines) + "\n"
    out = re.sub(
        rf"{UNCALIBRATED}: every threshold marked '{PLACEHOLDER}' is a placeholder that admits any model until "
        r"`mlff-harness calibrate` replaces it\.",
        f"Thresholds calibrated by mlff-harness calibrate: see {record}.",
        out,
    )
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(out, encoding="utf-8")
    try:
        load_suite(temporary)
    except SuiteError:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)
