"""Check kinds: measure what a check names, compare with its thresholds, give an outcome.

Each check kind is one function from (check, model name, run) to a
:class:`CheckOutcome`; every bounded metric of the check becomes one
:class:`Measurement` with its value, threshold and pass/fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from harness import checks_faithfulness, metrics
from harness.baseline import check_shap_settings, load_baseline
from harness.errors import CheckError, DataError
from harness.outcome import CheckOutcome, Measurement, measure
from harness.schema import (
    AccuracyCheck,
    CheckBase,
    GradcamLocusCheck,
    OverlapCheck,
    RegressionCheck,
    ShapClassesCheck,
    check_label,
)
from harness.session import SuiteRun


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _measure(check: CheckBase, values: dict[str, float], *, evaluated: bool = True) -> list[Measurement]:
    return measure(check, values, evaluated=evaluated)


def _accuracy(check: AccuracyCheck, model: str, run: SuiteRun) -> tuple[list[Measurement], str | None, dict]:
    out, ref = run.outputs(model), run.reference
    overall = run.accuracy(model)
    values: dict[str, float] = dict(overall)
    per_element = metrics.force_errors_by_element(out.forces_eV_per_A, ref.forces_eV_per_A, ref.symbols)
    for element in check.per_element:
        if element not in per_element:
            raise CheckError(
                f"per_element names {element}, but the reference structures have no {element} atom "
                f"(elements: {', '.join(ref.elements)})"
            )
    values.update({f"per_element.{el}.{k}": v for el, row in per_element.items() for k, v in row.items()})
    details: dict[str, Any] = {"accuracy": overall, "per_element": per_element}
    if check.group_by is not None:
        labels = _group_labels(run, check.group_by)
        per_group = metrics.accuracy_by_group(
            out.energies_eV, ref.energies_eV, out.forces_eV_per_A, ref.forces_eV_per_A, ref.n_atoms, labels
        )
        for label in check.per_group:
            if label not in per_group:
                raise CheckError(
                    f"per_group names {check.group_by}={label!r}, but no reference structure has it "
                    f"(groups: {', '.join(sorted(per_group))})"
                )
        values.update({f"per_group.{g}.{k}": v for g, row in per_group.items() for k, v in row.items()})
        details.update({"group_by": check.group_by, "per_group": per_group})
    return _measure(check, values), None, details


def _group_labels(run: SuiteRun, key: str) -> list[str]:
    from harness.schema import group_label

    labels = []
    for index, atoms in enumerate(run.reference.structures):
        if key not in atoms.info:
            frame = int(run.reference.frame_indices[index])
            raise DataError(
                f"{run.reference.path}: frame {frame} has no atoms.info[{key!r}] for the accuracy check's "
                f"group_by (keys: {', '.join(sorted(atoms.info)) or 'none'})"
            )
        try:
            labels.append(group_label(atoms.info[key]))
        except ValueError as err:
            frame = int(run.reference.frame_indices[index])
            raise DataError(f"{run.reference.path}: frame {frame}: atoms.info[{key!r}]: {err}") from None
    return labels


def _gradcam_locus(
    check: GradcamLocusCheck, model: str, run: SuiteRun
) -> tuple[list[Measurement], str | None, dict]:
    ref = run.reference
    if check.element not in ref.elements:
        raise CheckError(
            f"no {check.element} atom in the reference structures (elements: {', '.join(ref.elements)}); "
            "select structures that contain it"
        )
    scores = run.scores(model)
    raw = run.outputs(model).gradcam_raw
    per_element = metrics.per_element_mean(scores, ref.symbols)
    values = {
        "mean_ratio_to_host": metrics.mean_ratio_to_host(scores, ref.symbols, check.element),
        "top_k_share": metrics.top_k_share(scores, ref.symbols, ref.offsets, check.element, check.top_k),
        "relu_zero_fraction": metrics.relu_zero_fraction(raw),
        "element_mean_score": per_element[check.element],
        "overall_mean_score": float(np.mean(scores)),
    }
    details = {
        "per_element_mean": per_element,
        "normalisation": run.suite.attribution.normalisation,
        "variant": run.suite.attribution.variant,
        **{k: _finite_or_none(v) for k, v in values.items()},
    }
    return _measure(check, values), None, details


def _shap_classes(
    check: ShapClassesCheck, model: str, run: SuiteRun
) -> tuple[list[Measurement], str | None, dict]:
    explanation = run.explanation(model)
    top = explanation.top(check.top_n)
    values: dict[str, float] = {"surrogate_cv_r2": explanation.cv_r2}
    if check.involving:
        values["involving_share"] = metrics.share_involving(top, check.involving)
    if check.angular_l:
        values["angular_l_share"] = metrics.share_with_l(top, check.angular_l)
    if check.pair:
        values["pair_share"] = metrics.share_of_pair(top, check.pair)
    if check.radial_n:
        values["radial_n_share"] = metrics.share_with_radial(top, check.radial_n)
    gate = check.surrogate_cv_r2.admits(explanation.cv_r2)
    measured = [Measurement("surrogate_cv_r2", explanation.cv_r2, check.surrogate_cv_r2, gate)]
    others = {k: v for k, v in values.items() if k != "surrogate_cv_r2"}
    measured += [
        m for m in _measure(check, {**others, "surrogate_cv_r2": explanation.cv_r2}, evaluated=gate)
        if m.metric != "surrogate_cv_r2"
    ]
    reason = None
    if not gate:
        reason = (
            f"surrogate cross-validated R^2 = {explanation.cv_r2:.3f} is outside {check.surrogate_cv_r2.describe()}: "
            "the SHAP ranking is not evidence, so no feature class is judged"
        )
    else:
        if check.top_feature_pair is not None:
            first = explanation.ranking[0]
            from harness.descriptors import parse_feature_name

            if tuple(sorted(parse_feature_name(first).pair)) != tuple(sorted(check.top_feature_pair)):
                reason = f"top feature {first} is not of pair {'-'.join(check.top_feature_pair)}"
        missing = [p for p in check.must_include if not any(re.search(p, name) for name in top)]
        if missing and reason is None:
            reason = f"no top-{check.top_n} feature matches {', '.join(repr(p) for p in missing)}"
    details = {
        "surrogate_cv_r2": explanation.cv_r2,
        "surrogate_cv_r2_folds": [float(v) for v in explanation.cv_r2_folds],
        "top_features": [
            {"name": n, "mean_abs_shap": v} for n, v in zip(top, explanation.importance_of(top))
        ],
        "angular_histogram": {str(k): v for k, v in metrics.angular_histogram(top).items()},
        "pair_histogram": metrics.pair_histogram(top),
    }
    return measured, reason, details


def _overlap(check: OverlapCheck, model: str, run: SuiteRun) -> tuple[list[Measurement], str | None, dict]:
    mine, theirs = run.explanation(model), run.explanation(check.with_)
    a, b = mine.top(check.top_n), theirs.top(check.top_n)
    values = {"shared": float(metrics.shared_count(a, b)), "jaccard": metrics.jaccard(a, b)}
    details = {"with": check.with_, "shared_features": sorted(set(a) & set(b)), "cv_r2": [mine.cv_r2, theirs.cv_r2]}
    return _measure(check, values), None, details


def _regression(
    check: RegressionCheck, model: str, run: SuiteRun
) -> tuple[list[Measurement], str | None, dict]:
    path = run.loaded.resolve(check.baseline)
    baseline = load_baseline(path, run, model)
    if check.shap_top_shared is not None:
        check_shap_settings(baseline, path, run)
    scores = run.scores(model)
    values = {
        "gradcam_rank_correlation": metrics.mean_rank_correlation(
            scores, baseline.scores, run.reference.offsets
        ),
        "shap_top_shared": float(metrics.shared_count(run.explanation(model).top(check.top_n), baseline.top(check.top_n)))
        if check.shap_top_shared is not None
        else float("nan"),
        "energy_rmse_change_meV_per_atom": run.accuracy(model)["energy_rmse_meV_per_atom"]
        - baseline.energy_rmse_meV_per_atom,
    }
    details = {"baseline": str(path), "baseline_model_sha256": baseline.model_sha256}
    return _measure(check, values), None, details


_KINDS: dict[str, Callable[[Any, str, SuiteRun], tuple[list[Measurement], str | None, dict]]] = {
    "accuracy": _accuracy,
    "gradcam_locus": _gradcam_locus,
    "shap_classes": _shap_classes,
    "overlap": _overlap,
    "regression": _regression,
    **checks_faithfulness.KINDS,
}


def run_check(check: CheckBase, model: str, run: SuiteRun, *, line: int = 0) -> CheckOutcome:
    """Measure one check on one model of a suite run."""
    kind: str = check.kind  # type: ignore[attr-defined]
    measured, reason, details = _KINDS[kind](check, model, run)
    return CheckOutcome(
        check=check_label(check),
        kind=kind,
        model=model,
        line=line,
        measurements=tuple(measured),
        reason=reason,
        details=details,
    )
