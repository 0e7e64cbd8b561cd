"""Check kinds: measure what a check names, compare with its thresholds, give an outcome.

Each check kind is one function from (check, model name, run) to a
:class:`CheckOutcome`; every bounded metric of the check becomes one
:class:`Measurement` with its value, threshold and pass/fail.

A value that cannot be computed (an element the data lack, constant scores, an
empty group, a constant error, too few structures) is measured as undefined
(:func:`harness.explain.metrics.undefined`, with its reason) and fails its threshold;
a kind raises only for a contradictory suite or unreadable input. SHAP-level
kinds first judge their surrogate's R^2 (a ``gate`` measurement) and return
why it does not explain the error, if it does not; the check's
``if_unexplained`` then decides between fail and inconclusive
(:attr:`CheckOutcome.status`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.explain import metrics
from harness.explain.metrics import ZERO_VARIANCE_eV, undefined
from harness.gate import checks_atoms, checks_faithfulness
from harness.gate.baseline import check_shap_settings, load_baseline
from harness.gate.outcome import CheckOutcome, Measurement, judge, measure
from harness.gate.session import Explanation, SuiteRun
from harness.suite.check_kinds import (
    AccuracyCheck,
    CheckBase,
    GradcamLocusCheck,
    OverlapCheck,
    RegressionCheck,
    ShapClassesCheck,
)
from harness.suite.schema import check_label

# A check kind returns its measurements, a failure reason (or None), details and, for SHAP-level
# kinds, why the surrogate does not explain the model's error (or None): the check's
# `if_unexplained` policy decides that outcome.
Result = tuple[list[Measurement], "str | None", dict[str, Any]]
ShapResult = tuple[list[Measurement], "str | None", dict[str, Any], "str | None"]


def _accuracy(check: AccuracyCheck, model: str, run: SuiteRun) -> Result:
    out, ref = run.outputs(model), run.reference
    overall = run.accuracy(model)
    values: dict[str, float] = dict(overall)
    per_element = metrics.force_errors_by_element(out.forces_eV_per_A, ref.forces_eV_per_A, ref.symbols)
    values.update({f"per_element.{el}.{k}": v for el, row in per_element.items() for k, v in row.items()})
    for element, body in check.per_element.items():
        if element not in per_element:
            why = f"no {element} atom in the reference structures (elements: {', '.join(ref.elements)})"
            values.update({f"per_element.{element}.{k}": undefined(why) for k, _ in body})
    details: dict[str, Any] = {"accuracy": overall, "per_element": per_element}
    if check.group_by is not None:
        labels = _group_labels(run, check.group_by)
        per_group = metrics.accuracy_by_group(
            out.energies_eV, ref.energies_eV, out.forces_eV_per_A, ref.forces_eV_per_A, ref.n_atoms, labels
        )
        values.update({f"per_group.{g}.{k}": v for g, row in per_group.items() for k, v in row.items()})
        for label, group_bounds in check.per_group.items():
            if label not in per_group:
                why = (
                    f"no reference structure has {check.group_by}={label!r}: the group is empty "
                    f"(groups: {', '.join(sorted(per_group))})"
                )
                values.update({f"per_group.{label}.{k}": undefined(why) for k, _ in group_bounds})
        details.update({"group_by": check.group_by, "per_group": per_group})
    return measure(check, values), None, details


def _group_labels(run: SuiteRun, key: str) -> list[str]:
    from harness.suite.check_kinds import group_label

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


def _gradcam_locus(check: GradcamLocusCheck, model: str, run: SuiteRun) -> Result:
    ref = run.reference
    scores = run.scores(model)
    raw = run.outputs(model).gradcam_raw
    per_element = metrics.per_element_mean(scores, ref.symbols)
    absent = None
    if check.element not in ref.elements:
        absent = undefined(
            f"no {check.element} atom in the reference structures (elements: {', '.join(ref.elements)})"
        )
    values = {
        "mean_ratio_to_host": absent if absent is not None else metrics.mean_ratio_to_host(
            scores, ref.symbols, check.element
        ),
        "top_k_share": absent if absent is not None else metrics.top_k_share(
            scores, ref.symbols, ref.offsets, check.element, check.top_k
        ),
        "relu_zero_fraction": metrics.relu_zero_fraction(raw),
        "element_mean_score": absent if absent is not None else per_element[check.element],
        "overall_mean_score": float(np.mean(scores)),
    }
    details = {
        "per_element_mean": per_element,
        "normalisation": run.suite.attribution.normalisation,
        "variant": run.suite.attribution.variant,
        **{k: (float(v) if np.isfinite(v) else None) for k, v in values.items()},
    }
    return measure(check, values), None, details


def explanation_or_reason(run: SuiteRun, model: str) -> Explanation | str:
    """The model's surrogate and SHAP ranking, or why it is undefined (too few structures, a constant target).

    Shared by every SHAP-level check kind.
    """
    folds, n = run.suite.surrogate.cv_folds, len(run.reference)
    if n < 2 * folds:
        return (
            f"the surrogate needs at least {2 * folds} structures for {folds}-fold cross-validation; "
            f"the reference set has {n}"
        )
    target = run.error_target(model)
    if not float(np.std(target)) > ZERO_VARIANCE_eV:
        return (
            f"model {model!r} has the same energy error on every structure (standard deviation "
            f"{float(np.std(target)):.2g} eV): the surrogate has nothing to explain"
        )
    return run.explanation(model)


def ranking_undefined(explanation: Explanation) -> str | None:
    """Why the SHAP ranking orders nothing (every mean |SHAP| is 0), else None."""
    if not np.any(np.asarray(explanation.importance) > 0):
        return "every feature has zero mean |SHAP|: the surrogate ranks no feature above another"
    return None


def unexplained_reason(what: str, r2: float, bound_text: str, consequence: str) -> str:
    """The sentence a SHAP-level check gives when its surrogate does not explain the model's error."""
    return f"{what} = {r2:.3f} is outside {bound_text}: the surrogate does not explain the model's error, {consequence}"


def _all_undefined(check: CheckBase, why: str) -> list[Measurement]:
    return [
        judge(metric, bound, undefined(why), gate=metric == "surrogate_cv_r2")
        for metric, bound in check.bounds().items()
    ]


def _shap_classes(check: ShapClassesCheck, model: str, run: SuiteRun) -> ShapResult:
    found = explanation_or_reason(run, model)
    if isinstance(found, str):
        return _all_undefined(check, found), None, {"surrogate": found}, None
    explanation = found
    top = explanation.top(check.top_n)
    unranked = ranking_undefined(explanation)

    elements = run.reference.elements

    def share(compute: Callable[[], float], named: list[str] | None = None) -> float:
        absent = [el for el in named or [] if el not in elements]
        if absent:  # its SOAP block is zero on every structure: a share of it would be vacuous
            return undefined(
                f"no {', '.join(absent)} atom in the reference structures (elements: {', '.join(elements)})"
            )
        return compute() if unranked is None else undefined(unranked)

    values: dict[str, float] = {}
    if check.involving:
        values["involving_share"] = share(
            lambda: metrics.share_involving(top, check.involving), [check.involving]  # type: ignore[arg-type]
        )
    if check.angular_l:
        values["angular_l_share"] = share(lambda: metrics.share_with_l(top, check.angular_l))  # type: ignore[arg-type]
    if check.pair:
        values["pair_share"] = share(lambda: metrics.share_of_pair(top, check.pair), list(check.pair))  # type: ignore[arg-type]
    if check.radial_n:
        values["radial_n_share"] = share(lambda: metrics.share_with_radial(top, check.radial_n))  # type: ignore[arg-type]
    gate = judge("surrogate_cv_r2", check.surrogate_cv_r2, explanation.cv_r2, gate=True)
    measured = [gate] + [
        m for m in measure(check, {**values, "surrogate_cv_r2": explanation.cv_r2}, evaluated=gate.passed)
        if m.metric != "surrogate_cv_r2"
    ]
    reason = unexplained = None
    if not gate.passed and not gate.undefined:
        unexplained = unexplained_reason(
            "surrogate cross-validated R^2", explanation.cv_r2, check.surrogate_cv_r2.describe(),
            "so the SHAP ranking is not evidence and no feature class is judged",
        )
    elif gate.passed:
        if (check.top_feature_pair is not None or check.must_include) and unranked is not None:
            reason = f"the top features are undefined: {unranked}"
        absent = [el for el in check.top_feature_pair or [] if el not in elements]
        if absent and reason is None:
            reason = (
                f"top_feature_pair is undefined: no {', '.join(absent)} atom in the reference structures "
                f"(elements: {', '.join(elements)})"
            )
        if check.top_feature_pair is not None and reason is None:
            first = explanation.ranking[0]
            from harness.explain.descriptors import parse_feature_name

            if tuple(sorted(parse_feature_name(first).pair)) != tuple(sorted(check.top_feature_pair)):
                reason = f"top feature {first} is not of pair {'-'.join(check.top_feature_pair)}"
        missing = [p for p in check.must_include if not any(re.search(p, name) for name in top)]
        if missing and reason is None:
            reason = f"no top-{check.top_n} feature matches {', '.join(repr(p) for p in missing)}"
    details = {
        "surrogate_cv_r2": explanation.cv_r2,
        "surrogate_cv_r2_folds": [float(v) for v in explanation.cv_r2_folds],
        "top_features": [
            {"name": n, "mean_abs_shap": v} for n, v in zip(top, explanation.importance_of(top), strict=True)
        ],
        "angular_histogram": {str(k): v for k, v in metrics.angular_histogram(top).items()},
        "pair_histogram": metrics.pair_histogram(top),
    }
    return measured, reason, details, unexplained


def _overlap(check: OverlapCheck, model: str, run: SuiteRun) -> ShapResult:
    found = {name: explanation_or_reason(run, name) for name in dict.fromkeys([model, check.with_])}
    missing = {name: why for name, why in found.items() if isinstance(why, str)}
    if missing:
        why = "; ".join(f"surrogate of model {name!r}: {text}" for name, text in missing.items())
        return _all_undefined(check, why), None, {"with": check.with_, "surrogate": why}, None
    mine, theirs = found[model], found[check.with_]
    assert isinstance(mine, Explanation) and isinstance(theirs, Explanation)
    weaker = model if mine.cv_r2 <= theirs.cv_r2 else check.with_
    r2 = min(mine.cv_r2, theirs.cv_r2)
    a, b = mine.top(check.top_n), theirs.top(check.top_n)
    unranked = [f"model {n!r}: {w}" for n, e in ((model, mine), (check.with_, theirs)) if (w := ranking_undefined(e))]
    values: dict[str, float] = {"surrogate_cv_r2": r2}
    if unranked:
        why = "; ".join(unranked)
        values.update({"shared": undefined(why), "jaccard": undefined(why)})
    else:
        values.update({"shared": float(metrics.shared_count(a, b)), "jaccard": metrics.jaccard(a, b)})
    gate = judge("surrogate_cv_r2", check.surrogate_cv_r2, r2, gate=True)
    measured = [gate] + [m for m in measure(check, values, evaluated=gate.passed) if m.metric != "surrogate_cv_r2"]
    unexplained = None
    if not gate.passed and not gate.undefined:
        unexplained = unexplained_reason(
            f"surrogate cross-validated R^2 of model {weaker!r}", r2, check.surrogate_cv_r2.describe(),
            f"so its top-{check.top_n} set is not evidence and the overlap is not judged",
        )
    details = {"with": check.with_, "shared_features": sorted(set(a) & set(b)), "cv_r2": [mine.cv_r2, theirs.cv_r2]}
    return measured, None, details, unexplained


def _regression(check: RegressionCheck, model: str, run: SuiteRun) -> ShapResult:
    path = run.loaded.resolve(check.baseline)
    baseline = load_baseline(path, run, model)
    if check.shap_top_shared is not None:
        check_shap_settings(baseline, path, run)
    scores = run.scores(model)
    values: dict[str, float] = {
        "gradcam_rank_correlation": metrics.mean_rank_correlation(scores, baseline.scores, run.reference.offsets),
        "energy_rmse_change_meV_per_atom": run.accuracy(model)["energy_rmse_meV_per_atom"]
        - baseline.energy_rmse_meV_per_atom,
    }
    details: dict[str, Any] = {"baseline": str(path), "baseline_model_sha256": baseline.model_sha256}
    if "surrogate_cv_r2" not in check.bounds():  # no SHAP part
        return measure(check, values), None, details, None
    found = explanation_or_reason(run, model)
    if isinstance(found, str):
        values.update({"shap_top_shared": undefined(found), "surrogate_cv_r2": undefined(found)})
        return [judge(m, b, values[m], gate=m == "surrogate_cv_r2") for m, b in check.bounds().items()], None, \
            details, None
    unranked = ranking_undefined(found)
    values["surrogate_cv_r2"] = found.cv_r2
    if check.shap_top_shared is not None:
        values["shap_top_shared"] = undefined(unranked) if unranked else float(
            metrics.shared_count(found.top(check.top_n), baseline.top(check.top_n))
        )
    gate = judge("surrogate_cv_r2", check.surrogate_cv_r2, found.cv_r2, gate=True)
    measured = []
    for metric, bound in check.bounds().items():
        if metric == "surrogate_cv_r2":
            measured.append(gate)
        else:
            measured.append(judge(metric, bound, values[metric], evaluated=gate.passed or metric != "shap_top_shared"))
    unexplained = None
    if not gate.passed and not gate.undefined:
        unexplained = unexplained_reason(
            "surrogate cross-validated R^2", found.cv_r2, check.surrogate_cv_r2.describe(),
            "so its top features are not evidence and shap_top_shared is not judged",
        )
    details["surrogate_cv_r2"] = found.cv_r2
    return measured, None, details, unexplained


_KINDS: dict[str, Callable[[Any, str, SuiteRun], Result | ShapResult]] = {
    "accuracy": _accuracy,
    "gradcam_locus": _gradcam_locus,
    "shap_classes": _shap_classes,
    "overlap": _overlap,
    "regression": _regression,
    **checks_faithfulness.KINDS,
    **checks_atoms.KINDS,
}


def run_check(check: CheckBase, model: str, run: SuiteRun, *, line: int = 0) -> CheckOutcome:
    """Measure one check on one model of a suite run."""
    kind: str = check.kind  # type: ignore[attr-defined]
    measured, reason, details, *rest = _KINDS[kind](check, model, run)
    unexplained = rest[0] if rest else None
    return CheckOutcome(
        check=check_label(check),
        kind=kind,
        model=model,
        line=line,
        measurements=tuple(measured),
        reason=reason,
        details=details,
        unexplained=unexplained,
        if_unexplained=getattr(check, "if_unexplained", None) if unexplained is not None else None,
    )
