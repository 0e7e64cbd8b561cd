"""How far each gated value moves with precision, device and seeds, against its margin.

A gate whose candidate passes on one machine and fails on another is no gate
(issue 16). :func:`measure_spread` runs the candidate of a suite under
variants of what should not matter:

* every seed of the run (``settings.seed``, and a check's own ``seed`` or
  ``bootstrap.seed`` where it sets one): surrogate CV folds and fit, bootstrap
  resamples, randomised weights, ablation splits; at the suite's precision;
* the other precision (float32 / float64) at the suite's seed;
* results documents of other runs (e.g. on a GPU, ``--harness-results``).

For every gated metric it reports the values, their spread (max - min), the
threshold, and the margin of the reference run (the suite's own device,
precision and seed): the distance from its gated value to the nearest end of
the bound, positive inside. A metric is *fragile* when its margin is below
``FRAGILE_FACTOR`` (3) times its spread: hardware or a seed could flip it.

A bound may record its measured spread (``spread:`` in the suite); the
summary table and the HTML report then flag a fragile value at gate time
(:func:`is_fragile`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DataError, HarnessError
from harness.gate.outcome import FRAGILE_FACTOR, gated_value, margin

CANDIDATE = "candidate"


# --- margins --------------------------------------------------------------------------------------


# --- variants -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way of running the same suite: device, precision and seed."""

    device: str
    dtype: str
    seed: int

    @property
    def label(self) -> str:
        return f"{self.device}-{self.dtype}-seed{self.seed}"


def default_variants(suite_dtype: str, suite_seed: int, *, seeds: int, device: str = "cpu") -> list[Variant]:
    """The reference (suite settings) first, then seeds+1.., then the other precision at the suite's seed."""
    if seeds < 1:
        raise DataError(f"--seeds {seeds}: need at least 1")
    out = [Variant(device, suite_dtype, suite_seed + i) for i in range(seeds)]
    other = "float32" if suite_dtype == "float64" else "float64"
    out.append(Variant(device, other, suite_seed))
    return out


def with_seed(suite: Any, seed: int) -> Any:
    """The suite with ``settings.seed`` and every check's own seeds set to ``seed``."""
    checks = []
    for check in suite.checks:
        update: dict[str, Any] = {}
        if getattr(check, "seed", None) is not None:
            update["seed"] = seed
        boot = getattr(check, "bootstrap", None)
        if boot is not None and boot.seed is not None:
            update["bootstrap"] = boot.model_copy(update={"seed": seed})
        checks.append(check.model_copy(update=update) if update else check)
    settings = suite.settings.model_copy(update={"seed": seed})
    return suite.model_copy(update={"settings": settings, "checks": checks})


Key = tuple[str, str, str]  # (suite, check, metric)


@dataclass
class Gated:
    """One gated metric of the candidate over the variants."""

    suite: str
    check: str
    metric: str
    min: float | None
    max: float | None
    on: str
    threshold: str
    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    reference: str = ""  # the label of the run with the suite's own settings

    @property
    def finite(self) -> list[float]:
        return [v for v in self.values.values() if math.isfinite(v)]

    @property
    def spread(self) -> float:
        values = self.finite
        return max(values) - min(values) if len(values) > 1 else 0.0

    @property
    def margin(self) -> float:
        """Margin of the reference run's value."""
        return margin(self.min, self.max, self.values.get(self.reference, float("nan")))

    @property
    def worst_margin(self) -> float:
        return min((margin(self.min, self.max, v) for v in self.values.values()), default=float("nan"))

    @property
    def fragile(self) -> bool:
        return not (self.margin >= FRAGILE_FACTOR * self.spread)

    def to_json(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "suite": self.suite, "check": self.check, "metric": self.metric, "min": self.min, "max": self.max,
            "on": self.on, "values": {k: clean(v) for k, v in self.values.items()}, "notes": self.notes,
            "spread": self.spread, "reference": self.reference, "margin": clean(self.margin),
            "worst_margin": clean(self.worst_margin), "fragile": self.fragile,
        }


def _record(table: dict[Key, Gated], suite: str, check: str, measurement: Any, label: str, value: float) -> None:
    bound = measurement.bound
    key = (suite, check, measurement.metric)
    if key not in table:
        on = getattr(bound, "on", "point")
        table[key] = Gated(suite, check, measurement.metric, bound.min, bound.max, on, bound.describe())
    table[key].values[label] = value


def run_variant(loaded: Any, variant: Variant, table: dict[Key, Gated], *, cache_dir: Path | None) -> None:
    """Run every check of the suite on its candidate under ``variant``; add the gated values to ``table``."""
    from harness.gate.checks import run_check
    from harness.gate.session import RunOptions, SuiteRun
    from harness.suite.schema import check_label

    suite = with_seed(loaded.suite, variant.seed)
    run = SuiteRun(
        dataclasses.replace(loaded, suite=suite),
        RunOptions(device=variant.device, dtype=variant.dtype, cache_dir=cache_dir, progress=False),  # type: ignore[arg-type]
    )
    for index, check in enumerate(suite.checks):
        if CANDIDATE not in suite.models_for(check):
            continue
        label = check_label(check)
        try:
            outcome = run_check(check, CANDIDATE, run, line=loaded.check_line(index))
        except HarnessError as err:
            for metric, bound in check.bounds().items():
                key = (suite.suite, label, metric)
                if key not in table:
                    table[key] = Gated(suite.suite, label, metric, bound.min, bound.max,
                                       getattr(bound, "on", "point"), bound.describe())
                table[key].values[variant.label] = float("nan")
                table[key].notes[variant.label] = f"could not run: {err}"
            continue
        for m in outcome.measurements:
            _record(table, suite.suite, label, m, variant.label, gated_value(m))


def add_results(path: Path, table: dict[Key, Gated]) -> str:
    """Add the candidate's gated values from a results document (``--harness-results``); returns its label.

    Outcomes are matched by check name and metric (check names are unique within a suite; the
    document's outcomes do not name their suite); metrics not measured here are ignored.
    """
    from harness.reports.results_schema import validate_results

    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read a results document ({err})") from None
    validate_results(document, source=path)
    device = _settings_of(document)
    label = f"{Path(path).name}" + (f" ({device})" if device else "")
    for outcome in document["outcomes"]:
        if outcome["model"] != CANDIDATE:
            continue
        for m in outcome["measurements"]:
            on = m.get("on", "point")
            raw = m.get(on if on in ("ci_low", "ci_high") else "value")
            value = float(raw) if raw is not None else float("nan")
            for key, entry in table.items():
                if key[1:] == (outcome["check"], m["metric"]):
                    entry.values[label] = value
    return label


def _settings_of(document: dict[str, Any]) -> str:
    try:
        settings = document["suites"][0]["provenance"]["settings"]
        return f"{settings['device']} {settings['dtype']}"
    except (KeyError, IndexError, TypeError):
        return ""


def measure_spread(
    suite_paths: Sequence[Path],
    *,
    seeds: int = 3,
    device: str = "cpu",
    results: Iterable[Path] = (),
    cache_dir: Path | None = None,
    echo: Any = None,
) -> list[Gated]:
    """Gated values of the candidate of every suite under every variant (the suite's own settings first)."""
    from harness.suite.loader import load_suite

    table: dict[Key, Gated] = {}
    for path in suite_paths:
        loaded = load_suite(path)
        variants = default_variants(loaded.suite.settings.dtype, loaded.suite.settings.seed, seeds=seeds,
                                    device=device)
        for variant in variants:
            if echo is not None:
                echo(f"spread: {loaded.suite.suite}: {variant.label}")
            run_variant(loaded, variant, table, cache_dir=cache_dir)
        for row in table.values():
            if row.suite == loaded.suite.suite:
                row.reference = variants[0].label
    for path in results:
        add_results(Path(path), table)
    return list(table.values())


# --- output ---------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.4g}"


def spread_markdown(rows: Sequence[Gated]) -> str:
    """One row per gated metric: values, spread, threshold, margin, margin/spread, fragile."""
    labels: list[str] = []
    for row in rows:
        labels += [k for k in row.values if k not in labels]
    head = ["suite", "check", "metric", "threshold", *labels, "spread", "margin", "margin/spread", "fragile"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        m, s = row.margin, row.spread
        ratio = "inf" if s == 0 and math.isfinite(m) and m > 0 else _fmt(m / s) if s > 0 else "n/a"
        cells = [row.suite, row.check, row.metric, row.threshold,
                 *[_fmt(row.values[k]) if k in row.values else "" for k in labels],
                 _fmt(s), _fmt(m), ratio, "**fragile**" if row.fragile else "ok"]
        lines.append("| " + " | ".join(cells) + " |")
    references = sorted({row.reference for row in rows})
    lines.append("")
    lines.append(
        f"margin: distance of the reference run's gated value ({', '.join(references)}) to the nearest end of "
        f"the threshold; spread: max - min over the columns; fragile: margin < {FRAGILE_FACTOR:g} x spread."
    )
    return "\n".join(lines)


def spread_document(rows: Sequence[Gated]) -> dict[str, Any]:
    return {"format": "mlff-harness-spread/1", "fragile_factor": FRAGILE_FACTOR,
            "metrics": [row.to_json() for row in rows]}
