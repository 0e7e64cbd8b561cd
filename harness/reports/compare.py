"""Differences between results files of two runs (`mlff-harness compare A.json B.json`).

Rows pair the same (model, check, metric) across runs; an outcome that flips
from pass (or inconclusive) to fail makes the comparison fail, so it can gate
too. Undefined values read ``n/a``; documents written before outcomes had a
``status`` are read from their ``passed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.reports.results_schema import load_results_file


@dataclass(frozen=True)
class Row:
    model: str
    check: str
    metric: str
    before: float | None
    after: float | None
    passed_before: bool | None
    passed_after: bool | None
    status_before: str | None = None  # "pass", "fail" or "inconclusive"; None: absent from that run
    status_after: str | None = None

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
    """A results document, validated against the results schema (format tag and structure)."""
    return load_results_file(path)


def outcome_status(outcome: dict[str, Any]) -> str:
    """'pass', 'fail' or 'inconclusive' (from `passed` in documents that predate `status`)."""
    if not outcome.get("passed"):
        return "fail"
    return "inconclusive" if outcome.get("status") == "inconclusive" else "pass"


def _index(doc: dict[str, Any]) -> dict[tuple[str, str, str], tuple[float | None, bool, str]]:
    out = {}
    for outcome in doc["outcomes"]:
        for m in outcome["measurements"]:
            key = (outcome["model"], outcome["check"], m["metric"])
            out[key] = (m["value"], bool(outcome["passed"]), outcome_status(outcome))
    return out


def diff_results(before: dict[str, Any], after: dict[str, Any]) -> list[Row]:
    """One row per (model, check, metric) present in either run."""
    a, b = _index(before), _index(after)
    rows = []
    for key in sorted(set(a) | set(b)):
        va, pa, sa = a.get(key, (None, None, None))
        vb, pb, sb = b.get(key, (None, None, None))
        rows.append(Row(*key, before=va, after=vb, passed_before=pa, passed_after=pb, status_before=sa,
                        status_after=sb))
    return rows


def format_rows(rows: list[Row], *, tolerance: float) -> str:
    """A table; drift beyond `tolerance` (relative) and flipped outcomes are marked."""

    def fmt(v: float | None) -> str:
        return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4g}"

    def outcome(status: str | None) -> str:
        return {"pass": "pass", "fail": "FAIL", "inconclusive": "inconclusive", None: "-"}.get(status, str(status))

    # the outcome column is the whole check's (a check can fail on a reason, e.g. a surrogate
    # below its R^2 gate, while each of its values is in bounds), shown on each of its rows
    table = [("model", "check", "metric", "before", "after", "check outcome", "note")]
    for r in rows:
        notes = []
        if r.flipped_to_fail:
            notes.append("FLIPPED TO FAIL")
        elif r.flipped_to_pass:
            notes.append("flipped to pass" if r.status_after == "pass" else f"flipped to {r.status_after}")
        elif r.status_before != r.status_after and None not in (r.status_before, r.status_after):
            notes.append(f"now {r.status_after}")
        drift = r.drift()
        if drift is not None and drift > tolerance:
            notes.append(f"drift {100 * drift:.1f}% > {100 * tolerance:g}%")
        elif drift is None and r.before is not None and r.after is not None and r.after != r.before:
            notes.append(f"changed by {r.after - r.before:+.4g} from 0")
        table.append(
            (r.model, r.check, r.metric, fmt(r.before), fmt(r.after),
             f"{outcome(r.status_before)} -> {outcome(r.status_after)}", ", ".join(notes))
        )
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row[:6], widths, strict=True)) + "  " + row[6] for row in table
    )
