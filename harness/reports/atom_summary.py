"""The per-atom 'what' level as `measure` and the reports show it: grouped classes with their distances.

Both read the session's per-atom explanation (:meth:`harness.gate.session.SuiteRun.atom_explanation`,
the same fit and on-disk cache as the ``atom_error_classes`` check); nothing
here fits a second surrogate. Per model they report the surrogate's
structure-grouped CV R^2, the top classes of SHAP grouped by unordered species
pair (``Cr-Cr pairs at 2.75-3.50 A``: the fewest shells carrying half the
pair's credit, :func:`harness.explain.grouping.shell_range_of_pair`) with their shares,
and the top single features. For a picture, :func:`class_structure_view` picks
the structure holding the atom with the largest |per-atom SHAP| of the top
class and records that class's SHAP sum on each of its sampled atoms.

Which settings: the suite's first ``atom_error_classes`` check with the pair-shell
descriptor; without one, the schema's default check settings. The pair shells
are the suite's ``descriptor.pair_shells``; without one, the schema's defaults
with the reference data's species. ``notes`` says which applied.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.errors import CheckError, DataError
from harness.explain.grouping import grouped_importance, shell_range_of_pair
from harness.gate.checks_atoms import class_label
from harness.suite.check_kinds import AtomErrorClassesCheck

TOP_CLASSES = 5
TOP_FEATURES = 10


def atom_check_for(run) -> tuple[AtomErrorClassesCheck, dict[str, Any]]:
    """The per-atom settings `measure` uses for ``run``, and a JSON-ready note of where they came from."""
    from harness.explain.atom_explain import pair_shell_settings_of

    check = next(
        (c for c in run.suite.checks if isinstance(c, AtomErrorClassesCheck) and c.descriptor == "pair_shells"), None
    )
    notes: list[str] = []
    from_suite = check is not None
    if check is None:
        check = AtomErrorClassesCheck(kind="atom_error_classes")
        notes.append(
            "the suite has no atom_error_classes check on pair shells: the schema's default surrogate settings "
            f"(max_atoms {check.max_atoms}, {check.estimator}, {check.n_estimators} trees, {check.cv_folds} folds)"
        )
    else:
        notes.append(f"surrogate settings of the suite's check {check.name or check.kind!r}")
    shells = pair_shell_settings_of(run)
    if "pair_shells" not in run.suite.descriptor.model_fields_set:
        notes.append(
            f"the suite has no descriptor.pair_shells: the schema's defaults ({shells.r_min_A:g}-{shells.r_max_A:g} A, "
            f"{shells.shell_width_A:g} A shells) with the species of the reference data ({', '.join(shells.species)})"
        )
    return check, {
        "check": (check.name or check.kind) if from_suite else None,
        "target": check.target,
        "group_by": "pair",
        "max_atoms": check.max_atoms,
        "pair_shells": shells.model_dump(),
        "notes": notes,
    }


def summarise(explanation, symbols: np.ndarray) -> dict[str, Any]:
    """CV R^2, the top pair classes (label, distance range, mean |SHAP|, share) and top features of one explanation."""
    from harness.explain.pair_shells import is_pair_shell_name

    names = list(explanation.feature_names)
    descriptor = "pair_shells" if all(is_pair_shell_name(n) for n in names) else "soap"
    grouped = grouped_importance(explanation.shap_values, names, "pair")
    classes = []
    for key, value in grouped.top(TOP_CLASSES):
        shells = None if descriptor != "pair_shells" else shell_range_of_pair(explanation.shap_values, names, key)
        classes.append(
            {
                "class": key,
                "label": class_label(key, grouped, explanation.shap_values, names, descriptor),
                # null: a centre=A indicator (no distance), or SOAP features (channels, not shells)
                "distance_range_A": None if shells is None else [shells[0], shells[1]],
                "mean_abs_shap": float(value),
                "share": grouped.share(key),
            }
        )
    sampled = np.asarray(symbols)[explanation.sample.atoms]
    return {
        "descriptor": descriptor,
        "surrogate_cv_r2": explanation.cv_r2,
        "surrogate_cv_r2_folds": [float(v) for v in explanation.cv_r2_folds],
        "n_atoms_sampled": int(len(explanation.sample.atoms)),
        "atoms_per_element": {el: int((sampled == el).sum()) for el in sorted(set(sampled.tolist()))},
        "top_classes": classes,
        "top_features": [
            {"name": n, "mean_abs_shap": float(explanation.importance[names.index(n)])}
            for n in explanation.top(TOP_FEATURES)
        ],
    }


def class_structure_view(run, explanation) -> dict[str, Any] | None:
    """The structure with the largest |per-atom SHAP| of the top pair class; that class's SHAP on its atoms.

    Atoms the surrogate did not sample have ``null``. None when there is no class.
    """
    grouped = grouped_importance(explanation.shap_values, list(explanation.feature_names), "pair")
    if not grouped.classes:
        return None
    values = grouped.per_sample[:, 0]
    sample = explanation.sample
    best = int(np.argmax(np.abs(values)))
    index = int(sample.structure[best])
    ref = run.reference
    atoms = ref.structures[index]
    shap: list[float | None] = [None] * len(atoms)
    for k in np.flatnonzero(sample.structure == index):
        shap[int(sample.atoms[k] - ref.offsets[index])] = float(values[k])
    return {
        "index": index,
        "frame": int(ref.frame_indices[index]),
        "class": grouped.classes[0],
        "chosen_by": f"largest |per-atom SHAP| of class {grouped.classes[0]}",
        "symbols": list(atoms.get_chemical_symbols()),
        "positions_A": np.asarray(atoms.get_positions(), dtype=float).round(4).tolist(),
        "shap": shap,
    }


def atom_summary(run, name: str, check: AtomErrorClassesCheck, *, structure: bool = False) -> dict[str, Any]:
    """:func:`summarise` of model ``name`` (plus its :func:`class_structure_view` when asked).

    When no surrogate can be fitted (too few structures for the folds, a target
    without spread) the R^2 is undefined with that reason and ``error`` says why.
    """
    from harness.explain.metrics import undefined

    try:
        explanation = run.atom_explanation(name, check)
    except (CheckError, DataError) as err:
        why = f"per-atom surrogate: {err}"
        return {"error": why, "surrogate_cv_r2": undefined(why), "top_classes": [], "top_features": []}
    summary = summarise(explanation, run.reference.symbols)
    if structure:
        summary["structure"] = class_structure_view(run, explanation)
    return summary


def computed_atom_explanation(run, name: str):
    """The per-atom explanation of ``name`` this run already computed (pair shells first), or None."""
    from harness.explain.pair_shells import is_pair_shell_name

    found = [e for (model, _), e in getattr(run, "_atom_explanations", {}).items() if model == name]
    found.sort(key=lambda e: not all(is_pair_shell_name(n) for n in e.feature_names))
    return found[0] if found else None
