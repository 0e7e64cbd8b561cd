"""Per-atom 'what' checks: grouped SHAP classes of each atom's force error; pair-resolved force bias.

``atom_error_classes`` fits the per-atom surrogate (:mod:`harness.explain.atom_explain`),
sums SHAP per atom over classes (:mod:`harness.explain.grouping`) and gates the share
and rank of a named species pair's class. A failure names the pair and the
distance range its credit sits in ("Cr-Cr pairs at 2.75-3.50 A carry 0.41 of
the grouped |SHAP|"). Like every SHAP-level check, nothing is judged when the
surrogate does not explain the error: the check's ``if_unexplained`` decides.

``pair_force_bias`` needs no surrogate: the mean central force error of a
species pair per distance shell (:mod:`harness.explain.pair_forces`); a failure says
"Cr-Cr pairs at 2.50-3.00 A are too repulsive by 56 meV/A".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.explain.grouping import GroupedImportance, grouped_importance, pair_key, shell_range_of_pair
from harness.explain.metrics import undefined
from harness.gate.outcome import Measurement, judge, measure
from harness.gate.session import SuiteRun
from harness.suite.check_kinds import AtomErrorClassesCheck, PairForceBiasCheck

_TOP_CLASSES = 5
Result = tuple[list[Measurement], str | None, dict[str, Any]]
ShapResult = tuple[list[Measurement], str | None, dict[str, Any], str | None]


def class_label(key: str, grouped: GroupedImportance, shap_values, names, descriptor: str) -> str:
    """'Cr-Cr pairs at 2.75-3.50 A' for a pair class of pair shells; the key otherwise."""
    if grouped.by == "pair" and descriptor == "pair_shells" and not key.startswith("centre="):
        shells = shell_range_of_pair(shap_values, names, key)
        if shells is not None:
            return f"{key} pairs at {shells[0]:.2f}-{shells[1]:.2f} A"
    return key


def _atom_error_classes(check: AtomErrorClassesCheck, model: str, run: SuiteRun) -> ShapResult:
    from harness.errors import CheckError
    from harness.gate.checks import unexplained_reason

    try:
        explanation = run.atom_explanation(model, check)
    except CheckError as err:  # too few atoms or structures for the folds, a target without variance
        why = f"per-atom surrogate: {err}"
        return (
            [
                judge(metric, bound, undefined(why), gate=metric == "surrogate_cv_r2")
                for metric, bound in check.bounds().items()
            ],
            None,
            {"surrogate": why},
            None,
        )
    names = explanation.feature_names
    grouped = grouped_importance(explanation.shap_values, names, check.group_by)
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
            parts.insert(
                0, f"{label}: share {grouped.share(key):.2f}, rank {grouped.rank(key)} of {len(grouped.classes)}"
            )
        failed = ", ".join(
            f"{m.metric} = {m.value:.3g} outside {m.bound.describe()}" for m in measured[1:] if not m.passed
        )
        reason = (
            f"per-atom force error ({check.descriptor}, grouped by {check.group_by}): {failed}; " + "; ".join(parts)
        )
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


def _pair_force_bias(check: PairForceBiasCheck, model: str, run: SuiteRun) -> Result:
    import numpy as np

    from harness.cache import content_key
    from harness.explain.pair_forces import central_errors, pair_geometry, shell_profile

    ref = run.reference
    pair = (check.pair[0], check.pair[1])
    label = pair_key(*pair)
    absent = [el for el in pair if el not in ref.elements]
    force_errors = run.outputs(model).forces_eV_per_A - ref.forces_eV_per_A
    d, c = (np.zeros(0), np.zeros(0))
    if not absent:
        key = content_key("pair-geometry", ref.identity, pair, check.r_max_A)
        geometry = run.cache.get_or_compute(
            "pair_geometry", key, lambda: pair_geometry(list(ref.structures), pair, check.r_max_A)
        )
        d, c = central_errors(geometry, force_errors)
    inside = d >= check.r_min_A
    d, c = d[inside], c[inside]
    edges = np.arange(check.r_min_A, check.r_max_A + 1e-9, check.shell_width_A)
    if edges[-1] < check.r_max_A - 1e-9:
        edges = np.append(edges, check.r_max_A)
    profile = shell_profile(d, c, edges, min_pairs=check.min_pairs_per_shell)
    if absent:
        why = f"no {', '.join(absent)} atom in the reference structures (elements: {', '.join(ref.elements)})"
    elif not profile:
        why = (
            f"fewer than {check.min_pairs_per_shell} {label} pairs in every {check.shell_width_A:g} A shell "
            f"between {check.r_min_A:g} and {check.r_max_A:g} A"
        )
    else:
        why = None
    values: dict[str, float] = {}
    if why is not None:
        values = {k: undefined(why) for k in ("bias_meV_per_A", "min_shell_bias_meV_per_A", "max_shell_bias_meV_per_A")}
    else:
        shells = [s.mean_eV_per_A * 1000 for s in profile]
        values = {
            "bias_meV_per_A": float(np.mean(c)) * 1000,
            "min_shell_bias_meV_per_A": min(shells),
            "max_shell_bias_meV_per_A": max(shells),
        }
    measured = measure(check, values)
    reason = None
    if why is None and any(not m.passed for m in measured):
        worst = {
            "min_shell_bias_meV_per_A": min(profile, key=lambda s: s.mean_eV_per_A),
            "max_shell_bias_meV_per_A": max(profile, key=lambda s: s.mean_eV_per_A),
        }
        failed = [m for m in measured if not m.passed]
        parts = []
        for m in failed:
            shell = worst.get(m.metric)
            if shell is None:  # the overall mean
                shell = max(profile, key=lambda s: abs(s.mean_eV_per_A))
            sense = "too attractive" if shell.mean_eV_per_A > 0 else "too repulsive"
            parts.append(
                f"{m.metric} = {m.value:.1f} outside {m.bound.describe()}: {label} pairs at "
                f"{shell.lo_A:.2f}-{shell.hi_A:.2f} A are {sense} by {abs(shell.mean_eV_per_A) * 1000:.1f} meV/A "
                f"(mean over {shell.n_pairs} pairs)"
            )
        reason = "; ".join(parts)
    details = {
        "pair": label,
        "n_pairs": int(len(d)),
        "profile": [
            {"lo_A": s.lo_A, "hi_A": s.hi_A, "n_pairs": s.n_pairs, "mean_meV_per_A": s.mean_eV_per_A * 1000}
            for s in profile
        ],
    }
    return measured, reason, details


KINDS: dict[str, Callable[[Any, str, SuiteRun], Result | ShapResult]] = {
    "atom_error_classes": _atom_error_classes,
    "pair_force_bias": _pair_force_bias,
}
