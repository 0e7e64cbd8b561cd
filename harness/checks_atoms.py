"""The per-atom 'what' check: grouped SHAP classes of a surrogate of each atom's force error.

``atom_error_classes`` fits the per-atom surrogate (:mod:`harness.atom_explain`),
sums SHAP per atom over classes (:mod:`harness.grouping`) and gates the share
and rank of a named species pair's class. A failure names the pair and the
distance range its credit sits in ("Cr-Cr pairs at 2.75-3.50 A carry 0.41 of
the grouped |SHAP|"). Like every SHAP-level check, nothing is judged when the
surrogate does not explain the error: the check's ``if_unexplained`` decides.
"""

from __future__ import annotations

from typing import Any

from harness.grouping import GroupedImportance, grouped_importance, pair_key, shell_range_of_pair
from harness.metrics import undefined
from harness.outcome import Measurement, judge, measure
from harness.schema import AtomErrorClassesCheck

_TOP_CLASSES = 5


def class_label(key: str, grouped: GroupedImportance, shap_values, names, descriptor: str) -> str:
    """'Cr-Cr pairs at 2.75-3.50 A' for a pair class of pair shells; the key otherwise."""
    if grouped.by == "pair" and descriptor == "pair_shells" and not key.startswith("centre="):
        shells = shell_range_of_pair(shap_values, names, key)
        if shells is not None:
            return f"{key} pairs at {shells[0]:.2f}-{shells[1]:.2f} A"
    return key


def _atom_error_classes(check: AtomErrorClassesCheck, model: str, run) -> tuple[list[Measurement], str | None, dict[str, Any], str | None]:
    from harness.checks import unexplained_reason

    from harness.errors import CheckError

    try:
        explanation = run.atom_explanation(model, check)
    except CheckError as err:  # too few atoms or structures for the folds, a target without variance
        why = f"per-atom surrogate: {err}"
        return (
            [judge(metric, bound, undefined(why), gate=metric == "surrogate_cv_r2") for metric, bound in check.bounds().items()],
            None,
            {"surrogate": why},
            None,
        )
    names = explanation.feature_names
    grouped = grouped_importance(explanation.shap_values, names, check.group_by)  # type: ignore[arg-type]
    elements = run.reference.elements
    values: dict[str, float] = {"surrogate_cv_r2": explanation.cv_r2}
    key = pair_key(*check.pair) if check.pair else None
    if key is not None:
        absent = [el for el in check.pair or [] if el not in elements]
        if absent:
            why = f"no {', '.join(absent)} atom in the reference structures (elements: {', '.join(elements)})"
            values["pair_class_share"] = undefined(why)
            values["pair_class_rank"] = undefined(why)
        else:
            values["pair_class_share"] = grouped.share(key)
            values["pair_class_rank"] = float(grouped.rank(key))
    values["top_class_share"] = grouped.share(grouped.classes[0]) if grouped.classes else undefined("no class")
    gate = judge("surrogate_cv_r2", check.surrogate_cv_r2, explanation.cv_r2, gate=True)
    measured = [gate] + [m for m in measure(check, values, evaluated=gate.passed) if m.metric != "surrogate_cv_r2"]
    top = [
        {
            "class": c,
            "label": class_label(c, grouped, explanation.shap_values, names, check.descriptor),
            "mean_abs_shap": v,
            "share": grouped.share(c),
        }
        for c, v in grouped.top(_TOP_CLASSES)
    ]
    reason = unexplained = None
    if not gate.passed and not gate.undefined:
        unexplained = unexplained_reason(
            "per-atom surrogate cross-validated R^2 (folds grouped by structure)",
            explanation.cv_r2,
            check.surrogate_cv_r2.describe(),
            "so no feature class is judged",
        )
    elif gate.passed and any(not m.passed for m in measured[1:]):
        parts = [f"top class: {top[0]['label']} ({top[0]['share']:.2f} of the grouped |SHAP|)"] if top else []
        if key is not None and key in grouped.classes:
            label = class_label(key, grouped, explanation.shap_values, names, check.descriptor)
            parts.insert(0, f"{label}: share {grouped.share(key):.2f}, rank {grouped.rank(key)} of {len(grouped.classes)}")
        failed = ", ".join(f"{m.metric} = {m.value:.3g} outside {m.bound.describe()}" for m in measured[1:] if not m.passed)
        reason = f"per-atom force error ({check.descriptor}, grouped by {check.group_by}): {failed}; " + "; ".join(parts)
    sample_symbols = run.reference.symbols[explanation.sample.atoms]
    details = {
        "descriptor": check.descriptor,
        "target": check.target,
        "group_by": check.group_by,
        "surrogate_cv_r2": explanation.cv_r2,
        "surrogate_cv_r2_folds": [float(v) for v in explanation.cv_r2_folds],
        "n_atoms_sampled": int(len(explanation.sample.atoms)),
        "atoms_per_element": {el: int((sample_symbols == el).sum()) for el in sorted(set(sample_symbols.tolist()))},
        "target_mean_eV_per_A": float(explanation.target.mean()),
        "top_classes": top,
        "top_features": [
            {"name": n, "mean_abs_shap": float(explanation.importance[names.index(n)])} for n in explanation.top(10)
        ],
    }
    return measured, reason, details, unexplained


KINDS = {"atom_error_classes": _atom_error_classes}
