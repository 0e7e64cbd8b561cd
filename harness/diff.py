"""Differences between results files of two runs (`mlff-harness compare A.json B.json`).

Rows pair the same (model, check, metric) across runs; an outcome that flips
from pass to fail makes the comparison fail, so it can gate too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.report import RESULTS_FORMAT


@dataclass(frozen=True)
class Row:
    model: str
    check: str
    metric: str
    before: float | None
    after: float | None
    passed_before: bool | None
    passed_after: bool | None

    @property
    def flipped_to_fail(self) -> bool:
        return self.passed_before is True and self.passed_after is False

    @property
    def flipped_to_pass(self) -> bool:
        return self.passed_before is False and self.passed_after is True

    def drift(self) -> float | None:
        """Relative change |after - before| / |before|; None if either is missing or before is 0."""
        if self.before is None or self.after is None or abs(self.before) < 1e-12:
            return None
        return abs(self.after - self.before) / abs(self.before)


def load_results(path: Path) -> dict[str, Any]:
    """A results document, checked for its format tag."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read results JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
        raise DataError(f"{path}: not a {RESULTS_FORMAT} document (write one with --harness-results)")
    return doc


def _index(doc: dict[str, Any]) -> dict[tuple[str, str, str], tuple[float | None, bool]]:
    out = {}
    for outcome in doc["outcomes"]:
        for m in outcome["measurements"]:
            out[(outcome["model"], outcome["check"], m["metric"])] = (m["value"], bool(outcome["passed"]))
    return out


def diff_results(before: dict[str, Any], after: dict[str, Any]) -> list[Row]:
    """One row per (model, check, metric) present in either run."""
    a, b = _index(before), _index(after)
    rows = []
    for key in sorted(set(a) | set(b)):
        va, pa = a.get(key, (None, None))
        vb, pb = b.get(key, (None, None))
        rows.append(Row(*key, before=va, after=vb, passed_before=pa, passed_after=pb))
    return rows


def format_rows(rows: list[Row], *, tolerance: float) -> str:
    """A table; drift beyond `tolerance` (relative) and flipped outcomes are marked."""

    def fmt(v: float | None) -> str:
        return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4g}"

    def outcome(p: bool | None) -> str:
        return {True: "pass", False: "FAIL", None: "-"}[p]

    # the outcome column is the whole check's (a check can fail on a reason, e.g. a surrogate
    # below its R^2 gate, while each of its values is in bounds), shown on each of its rows
    table = [("model", "check", "metric", "before", "after", "check outcome", "note")]
    for r in rows:
        notes = []
        if r.flipped_to_fail:
            notes.append("FLIPPED TO FAIL")
        elif r.flipped_to_pass:
            notes.append("flipped to pass")
        drift = r.drift()
        if drift is not None and drift > tolerance:
            notes.append(f"drift {100 * drift:.1f}% > {100 * tolerance:g}%")
        elif drift is None and r.before is not None and r.after is not None and r.after != r.before:
            notes.append(f"changed by {r.after - r.before:+.4g} from 0")
        table.append(
            (r.model, r.check, r.metric, fmt(r.before), fmt(r.after),
             f"{outcome(r.passed_before)} -> {outcome(r.passed_after)}", ", ".join(notes))
        )
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:6], widths)) + "  " + row[6] for row in table)
