"""What `mlff-harness calibrate` writes: the table (Markdown and JSON) and the calibrated suite."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from harness.errors import SuiteError
from harness.own_system.calibrate import Calibration, Value
from harness.suite.bounds import Bound
from harness.suite.loader import LoadedSuite


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
                "too_close": list(r.proposal.too_close) if r.proposal else [],
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
        f"{cal.margin:g}, capped at the midpoint to the nearest must-fail value beyond it; a must-fail value "
        "nearer the worst good value than twice the minimum margin is 'too close' and not counted as caught; "
        "see `harness/own_system/calibrate.py`).",
        "",
        "| model | role | sha256 |",
        "| --- | --- | --- |",
        *[f"| {n} | {m['role']} | `{m['sha256'][:12]}` |" for n, m in cal.models.items()],
        "",
        "| check | metric | bound now | good values | must-fail values | proposed | margin | catches | too close |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in cal.rows:
        if r.fixed:
            proposed, margin, catches, close = f"{r.current.describe()} (kept: evidence bar)", "-", "-", "-"
        elif r.proposal is None:
            proposed, margin, catches, close = "refused (below)", "-", "-", "-"
        else:
            p = r.proposal
            proposed = p.bound.describe() if p.bound else "-"
            margin = ", ".join(f"{v:.3g}{' (capped)' if s in p.capped else ''}" for s, v in p.margin.items())
            catches = ", ".join(p.catches) or "none"
            close = ", ".join(p.too_close) or "-"
        lines.append(
            f"| {r.check} | {r.metric} | {r.current.describe()} | {values(r.good)} | {values(r.must_fail)} "
            f"| {proposed} | {margin} | {catches} | {close} |"
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
    """The table, written as every file of the harness is (harness.files)."""
    from harness.files import atomic_write_text

    atomic_write_text(path, text)


def _yaml_float(value: float) -> str:
    """A float YAML reads back as a float (PyYAML wants a dot in the mantissa: 1.0e-05, not 1e-05)."""
    text = repr(float(value))
    mantissa, _, exponent = text.partition("e")
    if exponent and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def _flow_bound(text: str, keys: list[str]) -> re.Match[str] | None:
    """The one-line `{...}` bound of the last of `keys`, each found after the one before on the line."""
    start = 0
    for key in keys[:-1]:
        found = re.compile(rf"(?<![\w.-]){re.escape(key)}\s*:").search(text, start)
        if found is None:
            return None
        start = found.end()
    return re.compile(rf"(?<![\w.-]){re.escape(keys[-1])}\s*:\s*(\{{[^{{}}]*\}})").search(text, start)


def write_suite(cal: Calibration, loaded: LoadedSuite, target: Path, *, record: str) -> None:
    """Write the suite with every proposed bound in place (one-line `{min: ..., max: ...}` bounds only)."""
    import yaml

    from harness.own_system.init_suite import PLACEHOLDER, UNCALIBRATED
    from harness.suite.loader import load_suite

    lines = loaded.path.read_text(encoding="utf-8").splitlines()
    for r in cal.rows:
        if r.proposal is None or r.proposal.bound is None:
            continue
        keys = r.metric.split(".")  # e.g. per_element.Au.force_rmse_meV_per_A
        number = loaded.lines.get(("checks", r.index, r.kind, *keys))
        text = lines[number - 1] if number else ""
        match = _flow_bound(text, keys)
        if match is None or number is None:
            raise SuiteError(
                f"cannot rewrite the bound of {r.check}.{r.metric} (not a one-line {{min: ..., max: ...}})",
                path=loaded.path, line=number, fix=f"set it by hand from {record}",
            )
        old = yaml.safe_load(match.group(1)) or {}
        # YAML 1.1 reads `on` as True
        new = {("on" if k is True else k): v for k, v in old.items() if k not in ("min", "max")}
        b = r.proposal.bound
        body = ", ".join([f"{s}: {_yaml_float(getattr(b, s))}" for s in ("min", "max") if getattr(b, s) is not None])
        body += "".join(f", {k}: {json.dumps(v)}" for k, v in new.items())
        text = text[: match.start(1)] + "{" + body + "}" + text[match.end(1) :]
        worst = ", ".join(f"{v:.4g}" for v in r.proposal.worst_good.values())
        note = f"# calibrated: worst good {worst}; catches {', '.join(r.proposal.catches) or 'none'}"
        ending = re.compile(rf"{re.escape(PLACEHOLDER)}\s*$")
        text = ending.sub(note, text) if ending.search(text) else f"{text}    {note}"
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
