"""Metrics over the checkpoints of a training run (`mlff-harness history DIR`).

A folder holds one results document per checkpoint (written with
`--harness-results`, placed in the run with `--harness-step N` and/or
`--harness-date ISO8601`). They are ordered by ``checkpoint.step`` when every
document has one, else by ``checkpoint.date`` when every document has one,
else by file modification time, with a warning (mtimes change when files are
copied: set a step). Each gated (model, check, metric) and each ungated
summary (RMSE, Grad-CAM means, surrogate R^2) becomes one series; the first
checkpoint at which a gated metric or check failed is marked. Undefined
values read ``n/a``; an inconclusive check (a surrogate that does not explain
the error) counts as not failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.files import atomic_write_bytes, atomic_write_text
from harness.reports.results_schema import load_results_file

UNGATED = "(not gated)"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    document: dict[str, Any]
    step: int | None
    date: datetime | None
    mtime: float

    @property
    def label(self) -> str:
        cp = self.document.get("checkpoint", {})
        if "label" in cp:
            return str(cp["label"])
        if self.step is not None:
            return f"step {self.step}"
        if self.date is not None:
            return self.date.isoformat(sep=" ", timespec="minutes")
        return self.path.stem


@dataclass(frozen=True)
class History:
    checkpoints: tuple[Checkpoint, ...]
    ordered_by: str  # "step", "date" or "mtime"
    warnings: tuple[str, ...]

    @property
    def x(self) -> list[float]:
        if self.ordered_by == "step":
            return [float(c.step) for c in self.checkpoints]  # type: ignore[arg-type]
        return [float(i) for i in range(len(self.checkpoints))]

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.checkpoints]


@dataclass(frozen=True)
class Series:
    """One metric of one model over the checkpoints (None where a run lacks it)."""

    model: str
    check: str
    metric: str
    values: tuple[float | None, ...]
    passed: tuple[bool | None, ...]  # of the measurement; None: not gated here or absent
    check_passed: tuple[bool | None, ...]  # of the whole check
    bound_min: float | None = None
    bound_max: float | None = None
    inconclusive: tuple[bool, ...] = ()  # the check was inconclusive there (a surrogate that does not explain)

    @property
    def gated(self) -> bool:
        return self.check != UNGATED

    def _first_false(self, flags: tuple[bool | None, ...]) -> int | None:
        return next((i for i, p in enumerate(flags) if p is False), None)

    @property
    def first_failure(self) -> int | None:
        """Index of the first checkpoint where this metric failed its threshold."""
        return self._first_false(self.passed)

    @property
    def first_check_failure(self) -> int | None:
        """Index of the first checkpoint where the check as a whole failed."""
        return self._first_false(self.check_passed)


def _parse_date(value: str, path: Path) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise DataError(f"{path}: checkpoint.date {value!r} is not ISO 8601 (fix: e.g. 2024-05-01T12:00)") from None


def load_history(directory: Path | str) -> History:
    """Every results document (*.json) of ``directory``, validated and ordered."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a folder of results files (fix: pass the folder of --harness-results files)")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise DataError(f"{directory}: no *.json results files (fix: write them with pytest --harness-results)")
    points = []
    for path in files:
        doc = load_results_file(path)
        cp = doc.get("checkpoint", {})
        date = _parse_date(cp["date"], path) if "date" in cp else None
        points.append(Checkpoint(path, doc, cp.get("step"), date, path.stat().st_mtime))
    warnings: list[str] = []
    if all(p.step is not None for p in points):
        by_step: dict[int, Path] = {}
        for p in points:
            if p.step in by_step:
                raise DataError(
                    f"{p.path} and {by_step[p.step]} both claim checkpoint step {p.step} (fix: one file per step)"
                )
            by_step[p.step] = p.path  # type: ignore[index]
        points.sort(key=lambda p: p.step)  # type: ignore[arg-type,return-value]
        ordered_by = "step"
    elif all(p.date is not None for p in points):
        naive = {p.date.tzinfo is None for p in points}  # type: ignore[union-attr]
        if len(naive) > 1:
            raise DataError(f"{directory}: some checkpoint dates have a time zone and some not (fix: give all one)")
        points.sort(key=lambda p: p.date)  # type: ignore[arg-type,return-value]
        ordered_by = "date"
    else:
        lacking = [p.path.name for p in points if p.step is None and p.date is None]
        warnings.append(
            "ordered by file modification time: not every file has a checkpoint step, nor every file a date"
            + (f" (neither: {', '.join(lacking)})" if lacking else "")
            + " (fix: run pytest with --harness-step N or --harness-date DATE)"
        )
        points.sort(key=lambda p: (p.mtime, p.path.name))
        ordered_by = "mtime"
    return History(tuple(points), ordered_by, tuple(warnings))


def _gated(doc: dict[str, Any]) -> dict[tuple[str, str, str], tuple[float | None, bool | None, bool, Any, Any, bool]]:
    out = {}
    for o in doc["outcomes"]:
        inconclusive = o.get("status") == "inconclusive"
        for m in o["measurements"]:
            # a value not judged, or the R^2 that left a check inconclusive, is not a failure of the model
            passed = m["passed"] if m["evaluated"] and not (inconclusive and m.get("gate")) else None
            out[(o["model"], o["check"], m["metric"])] = (
                m["value"], passed, bool(o["passed"]), m["min"], m["max"], inconclusive
            )
    return out


def _ungated(doc: dict[str, Any]) -> dict[tuple[str, str, str], float | None]:
    out: dict[tuple[str, str, str], float | None] = {}
    suites = doc["suites"]
    for suite in suites:
        prefix = "" if len(suites) == 1 else f"{suite['suite']}:"
        for model, acc in suite.get("accuracy", {}).items():
            for metric in ("energy_rmse_meV_per_atom", "force_rmse_meV_per_A"):
                out[(prefix + model, UNGATED, metric)] = acc.get(metric)
        for model, summary in suite.get("models", {}).items():
            gc = summary["gradcam"]
            out[(prefix + model, UNGATED, "gradcam_overall_mean")] = gc["overall_mean"]
            out[(prefix + model, UNGATED, "relu_zero_fraction")] = gc["relu_zero_fraction"]
            if "surrogate_cv_r2" in summary.get("shap", {}):
                out[(prefix + model, UNGATED, "surrogate_cv_r2")] = summary["shap"]["surrogate_cv_r2"]
    return out


def metric_series(history: History) -> list[Series]:
    """Gated series first (sorted by model, check, metric), then the ungated summaries."""
    gated = [_gated(c.document) for c in history.checkpoints]
    ungated = [_ungated(c.document) for c in history.checkpoints]
    series = []
    for key in sorted(set().union(*gated)):
        rows = [g.get(key) for g in gated]
        bounds = next(((r[3], r[4]) for r in reversed(rows) if r is not None), (None, None))
        series.append(Series(
            *key,
            values=tuple(r[0] if r else None for r in rows),
            passed=tuple(r[1] if r else None for r in rows),
            check_passed=tuple(r[2] if r else None for r in rows),
            inconclusive=tuple(bool(r and r[5]) for r in rows),
            bound_min=bounds[0],
            bound_max=bounds[1],
        ))
    gated_pairs = {(s.model, s.metric) for s in series}  # a gated metric is not repeated as a summary
    for key in sorted(k for k in set().union(*ungated) if (k[0], k[2]) not in gated_pairs):
        values = tuple(u.get(key) for u in ungated)
        series.append(Series(*key, values=values, passed=(None,) * len(values), check_passed=(None,) * len(values)))
    return series


def _cell(value: float | None, passed: bool | None, inconclusive: bool = False) -> str:
    text = "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"
    return text + (" FAIL" if passed is False else "") + (" inconclusive" if inconclusive else "")


def format_history(history: History, series: list[Series]) -> str:
    """A plain-text table: one row per series, one column per checkpoint, then where it first failed."""
    labels = history.labels
    table = [("model", "check", "metric", *labels, "first failed at")]
    for s in series:
        first = s.first_failure
        flags = s.inconclusive or (False,) * len(s.values)
        cells = (_cell(v, p, i) for v, p, i in zip(s.values, s.passed, flags, strict=True))
        table.append((s.model, s.check, s.metric, *cells, labels[first] if first is not None else "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "-" * len(lines[0]))
    checks = {}
    for s in series:
        if s.gated and (s.model, s.check) not in checks:
            checks[(s.model, s.check)] = (s.first_check_failure, [labels[i] for i, f in enumerate(s.inconclusive) if f])
    lines.append("")
    for (model, check), (first, inconclusive) in checks.items():
        where = f"first FAILED at {labels[first]} ({history.checkpoints[first].path.name})" if first is not None \
            else "passed at every checkpoint"
        if inconclusive:
            where += f" (inconclusive at {', '.join(inconclusive)})"
        lines.append(f"check {check!r} on model {model!r}: {where}")
    return "\n".join(lines)


def _panels(series: list[Series]) -> list[Any]:
    """One panel per (check, metric): the lines of every model."""
    from harness.reports.plots import HistoryPanel

    grouped: dict[tuple[str, str], list[Series]] = {}
    for s in series:
        grouped.setdefault((s.check, s.metric), []).append(s)
    return [
        HistoryPanel(
            title=f"{metric} (not gated)" if check == UNGATED else f"{metric} (check {check})",
            series={s.model: s.values for s in group},
            bound_min=group[0].bound_min,
            bound_max=group[0].bound_max,
            first_fail={s.model: s.first_failure for s in group},
        )
        for (check, metric), group in grouped.items()
    ]


def write_history_plots(path: Path | str, history: History, series: list[Series]) -> Path:
    """Curves of every metric: one PNG grid (``*.png``) or an HTML page with the table and one PNG per metric."""
    import base64

    from harness.reports import plots

    path = Path(path)
    x_label = {"step": "training step", "date": "checkpoint (by date)", "mtime": "checkpoint (by file time)"}
    ticks = None if history.ordered_by == "step" else history.labels
    panels = _panels(series)
    if path.suffix.lower() == ".png":
        data = plots.history_grid(panels, history.x, x_label=x_label[history.ordered_by], tick_labels=ticks)
        atomic_write_bytes(path, data)
        return path
    if path.suffix.lower() not in (".html", ".htm"):
        raise DataError(f"{path}: history plots are written as .png or .html (fix: name the file so)")
    images = "".join(
        '<img class="plot" data-plot="history" alt="{}" src="data:image/png;base64,{}">'.format(
            escape(p.title),
            base64.b64encode(
                plots.metric_history(p, history.x, x_label=x_label[history.ordered_by], tick_labels=ticks)
            ).decode(),
        )
        for p in panels
    )
    warn = "".join(f"<p><b>warning:</b> {escape(w)}</p>" for w in history.warnings)
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>mlff-harness history</title>'
        "<style>body{font-family:system-ui,sans-serif;margin:2em}img{max-width:48%;margin:4px}</style></head>"
        f'<body><h1>mlff-harness history</h1>{warn}<section id="table"><pre>{escape(format_history(history, series))}'
        f'</pre></section><section id="curves">{images}</section></body></html>\n'
    )
    atomic_write_text(path, html)
    return path
