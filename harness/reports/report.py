"""Reports: the summary table printed after a run, and the results JSON document."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from harness import __version__
from harness.errors import DataError
from harness.files import atomic_write
from harness.gate.checks import CheckOutcome
from harness.gate.outcome import INCONCLUSIVE, Measurement

RESULTS_FORMAT = "mlff-harness-results/1"


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}"


def measurement_result(outcome: CheckOutcome, m: Measurement) -> str:
    """The result column of one measurement: PASS, FAIL, 'FAIL: undefined: why', 'not judged' or INCONCLUSIVE.

    A PASS within 3 measured spreads of its threshold (the bound's ``spread``) reads 'PASS (fragile)'.
    """
    if m.passed:
        from harness.gate.outcome import is_fragile

        return "PASS (fragile)" if is_fragile(m) else "PASS"
    if not m.evaluated:
        return "not judged"
    if m.gate and outcome.inconclusive_part:
        return "INCONCLUSIVE"
    if m.undefined:
        return f"FAIL: undefined: {m.undefined_reason}"
    return "FAIL"


def outcome_note(outcome: CheckOutcome) -> str | None:
    """The line under a check's measurements: why it failed beyond them, or why it is inconclusive."""
    if outcome.status == INCONCLUSIVE:
        return f"INCONCLUSIVE (if_unexplained: {outcome.if_unexplained}): {outcome.unexplained}"
    why = outcome.failure_reason
    if why:
        return f"FAIL: {why}"
    if outcome.inconclusive_part:  # failed on its other values; its SHAP part alone was inconclusive
        return f"FAIL on its other values; SHAP part INCONCLUSIVE (if_unexplained: {outcome.if_unexplained}): " \
            f"{outcome.unexplained}"
    return None


def summary_table(outcomes: Sequence[CheckOutcome], accuracy: Mapping[str, Mapping[str, float]]) -> str:
    """A plain-text table: one row per measured value (with its bootstrap interval, if any), then RMSE per model.

    Undefined values read ``n/a`` and fail with their reason; an inconclusive check
    (a surrogate that does not explain the error) says so on its own row.
    """
    rows = [("model", "check", "metric", "value", "interval", "threshold", "result")]
    for o in outcomes:
        for m in o.measurements:
            interval = ""
            if m.interval is not None:
                interval = f"[{_fmt(m.interval.low)}, {_fmt(m.interval.high)}] {m.interval.level:.0%}"
            value = "n/a" if m.undefined else _fmt(m.value)
            rows.append((o.model, o.check, m.metric, value, interval, m.bound.describe(), measurement_result(o, m)))
        note = outcome_note(o)
        if note:
            rows.append((o.model, o.check, "reason", "", "", "", note))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:6], widths, strict=True)) + "  " + row[6] for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    if accuracy:
        lines.append("")
        header = ("model", "E RMSE meV/atom", "E MAE meV/atom", "F RMSE meV/A", "F MAE meV/A")
        acc_rows = [header] + [
            (
                name,
                _fmt(a["energy_rmse_meV_per_atom"]),
                _fmt(a["energy_mae_meV_per_atom"]),
                _fmt(a["force_rmse_meV_per_A"]),
                _fmt(a["force_mae_meV_per_A"]),
            )
            for name, a in accuracy.items()
        ]
        w = [max(len(r[i]) for r in acc_rows) for i in range(5)]
        lines += ["  ".join(c.ljust(x) for c, x in zip(r, w, strict=True)) for r in acc_rows]
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars become Python ones, non-finite floats become null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def results_document(
    suites: Iterable[Mapping[str, Any]],
    outcomes: Sequence[CheckOutcome],
    *,
    timestamp: datetime | None = None,
    checkpoint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The versioned results document of one run (its JSON Schema: harness/reports/schemas/results-1.schema.json).

    ``suites`` are the per-suite sections (harness.reports.analysis.suite_section);
    ``checkpoint`` places the run in a training run for `mlff-harness history`:
    ``{"step": int, "date": ISO 8601 str, "label": str}``, each optional.
    """
    when = (timestamp or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    document: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "harness_version": __version__,
        "created": when,
        "suites": list(suites),
        "outcomes": [o.to_json() for o in outcomes],
        "passed": bool(outcomes) and all(o.passed for o in outcomes),  # an empty run is no pass
    }
    checkpoint = {k: v for k, v in (checkpoint or {}).items() if v is not None}
    unknown = sorted(set(checkpoint) - {"step", "date", "label"})
    if unknown:
        raise DataError(f"unknown checkpoint field(s) {unknown} (fix: use step, date, label)")
    if checkpoint:
        document["checkpoint"] = checkpoint
    return _clean(document)


def non_finite_paths(value: Any, where: str = "$") -> list[str]:
    """JSON paths of every NaN or infinity in a document (an undefined value that lost its reason)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{where}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{where}[{i}]")]
    return []


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write JSON atomically, keys sorted, so equal results give equal bytes.

    Undefined values must arrive as ``null`` with a reason beside them: a NaN
    or infinity is refused (ValueError naming its JSON path), never written.
    """
    leaks = non_finite_paths(document)
    if leaks:
        more = f" (and {len(leaks) - 1} more)" if len(leaks) > 1 else ""
        raise ValueError(
            f"{path}: refusing to write a non-finite number at {leaks[0]}{more}: an undefined value must be "
            "written as null with its reason"
        )

    def dump(handle: BinaryIO) -> None:  # streamed into the temporary file (tests/test_chaos.py kills mid-dump)
        text = io.TextIOWrapper(handle, encoding="utf-8")
        json.dump(document, text, indent=1, sort_keys=True, allow_nan=False)
        text.write("\n")
        text.detach()  # flushed; the binary handle stays open for atomic_write's fsync

    atomic_write(path, dump)
