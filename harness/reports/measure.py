"""Cross-model comparisons: every metric of every model of a suite, for analysis and calibration.

`mlff-harness measure SUITE` prints what :func:`measure_models` returns; the
thresholds of a gate are chosen from these numbers and recorded beside it.

Element-specific numbers (Grad-CAM locus, share of top SHAP features involving
an element) are reported per *focus element*: the ``elements`` argument (the
command's ``--element``), else the suite's ``focus_elements``, else the
elements its gradcam_locus and shap_classes checks name, else every element of
the reference data. An undefined number (an element absent from the data,
constant scores, a surrogate with nothing to fit) is ``null`` in the document,
and its JSON path maps to the reason in the document's ``undefined``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.explain import metrics
from harness.explain.stability import element_mean_intervals, top_n_frequency
from harness.gate.checks import explanation_or_reason, ranking_undefined
from harness.gate.session import Explanation, SuiteRun
from harness.reports.atom_summary import atom_check_for, atom_summary
from harness.suite.bounds import _element
from harness.suite.check_kinds import AtomErrorClassesCheck, GradcamLocusCheck, ShapClassesCheck


def focus_elements(run: SuiteRun, elements: Sequence[str] | None = None) -> list[str]:
    """The elements measured one by one: given, the suite's, its checks', or every element of the data."""
    if elements:
        chosen = list(dict.fromkeys(elements))
        for element in chosen:
            try:
                _element(element)
            except ValueError as err:
                raise DataError(f"--element {element}: {err}") from None
        return chosen
    if run.suite.focus_elements:
        return list(run.suite.focus_elements)
    named: list[str] = []
    for check in run.suite.checks:
        if isinstance(check, GradcamLocusCheck):
            named.append(check.element)
        elif isinstance(check, ShapClassesCheck):
            named += [check.involving] if check.involving else []
            named += list(check.pair or []) + list(check.top_feature_pair or [])
    return list(dict.fromkeys(named)) or list(run.reference.elements)


def _gradcam(run: SuiteRun, name: str, elements: list[str], top_k: int) -> dict[str, Any]:
    ref = run.reference
    raw = run.outputs(name).gradcam_raw
    scores = run.scores(name)
    element_ci = element_mean_intervals(scores, ref.symbols, ref.offsets, seed=run.suite.settings.seed)
    top_atoms = [
        ref.symbols[ref.offsets[i] + metrics.top_k_indices(s, top_k)].tolist()
        for i, s in enumerate(metrics.split(scores, ref.offsets))
    ]
    focus = {
        el: {
            "mean_ratio_to_host": metrics.mean_ratio_to_host(scores, ref.symbols, el),
            "top_k_share": metrics.top_k_share(scores, ref.symbols, ref.offsets, el, top_k),
        }
        for el in elements
    }
    return {
        "variant": run.suite.attribution.variant,
        "normalisation": run.suite.attribution.normalisation,
        "per_element_mean": metrics.per_element_mean(scores, ref.symbols),
        "per_element_mean_ci95": {el: [iv.low, iv.high] for el, iv in element_ci.items()},
        "overall_mean": float(np.mean(scores)),
        "max": float(np.max(scores)),
        "relu_zero_fraction": metrics.relu_zero_fraction(raw),
        "focus": focus,
        # the first focus element's, at the top level as before (paper tables read them there)
        "focus_element": elements[0],
        **focus[elements[0]],
        "top_k_identity": {
            el: float(np.mean([atoms.count(el) / len(atoms) for atoms in top_atoms])) for el in ref.elements
        },
    }


def _shap(run: SuiteRun, explanation: Explanation, elements: list[str], top_n: int) -> dict[str, Any]:
    top = explanation.top(top_n)
    unranked = ranking_undefined(explanation)
    present = run.reference.elements

    def involving(el: str) -> float:
        if el not in present:  # its SOAP blocks are zero everywhere: a share of them would be vacuous
            return metrics.undefined(f"no {el} atom in the reference structures (elements: {', '.join(present)})")
        return metrics.undefined(unranked) if unranked else metrics.share_involving(top, el)

    focus = {el: {"involving_share": involving(el)} for el in elements}
    first, second = explanation.importance_of(top[:2]) + [0.0] * (2 - len(top[:2]))
    return {
        "surrogate_cv_r2": explanation.cv_r2,
        "top": [{"name": n, "mean_abs_shap": v} for n, v in zip(top, explanation.importance_of(top), strict=True)],
        # share of 200 structure resamples in which each feature is in the top N
        "top_n_frequency": top_n_frequency(
            explanation.shap_values, explanation.feature_names, top_n, seed=run.suite.settings.seed
        ),
        "focus": focus,
        "focus_element": elements[0],
        **focus[elements[0]],
        "angular_histogram": {str(k): v for k, v in metrics.angular_histogram(top).items()},
        "pair_histogram": metrics.pair_histogram(top),
        "top_to_second_ratio": first / second
        if second > 0
        else metrics.undefined("fewer than two features with a nonzero mean |SHAP|"),
    }


def measure_model(
    run: SuiteRun,
    name: str,
    *,
    elements: Sequence[str] | None = None,
    top_k: int = 10,
    top_n: int = 20,
    atoms: AtomErrorClassesCheck | None = None,
) -> dict[str, Any]:
    """Accuracy, Grad-CAM summaries and SHAP summaries of one model, per focus element.

    With ``atoms`` (the per-atom settings, :func:`harness.reports.atom_summary.atom_check_for`)
    also the per-atom ranking: surrogate CV R^2, top pair classes with their
    distance ranges and shares, top features (:func:`harness.reports.atom_summary.atom_summary`).
    Undefined numbers are NaNs with a reason (:func:`harness.explain.metrics.why_undefined`);
    :func:`measure_models` turns them into ``null`` and records the reasons.
    """
    chosen = focus_elements(run, elements)
    found = explanation_or_reason(run, name)
    measured = {
        "accuracy": run.accuracy(name),
        "gradcam": _gradcam(run, name, chosen, top_k),
        "shap": {"error": found} if isinstance(found, str) else _shap(run, found, chosen, top_n),
    }
    if atoms is not None:
        measured["atoms"] = atom_summary(run, name, atoms)
    return measured


def measure_models(
    run: SuiteRun, *, top_n: int = 20, elements: Sequence[str] | None = None, atoms: bool = True
) -> dict[str, Any]:
    """measure_model for every model, plus pairwise and all-model top-N overlaps; JSON-ready (no NaN).

    ``atoms`` (default): each model's per-atom ranking too, and the settings it
    used under ``atom_settings`` (``mlff-harness measure --no-atoms`` skips it: one
    per-atom surrogate fit per model).
    """
    names = run.suite.models.names()
    chosen = focus_elements(run, elements)
    check, atom_settings = atom_check_for(run) if atoms else (None, None)
    per_model = {name: measure_model(run, name, elements=chosen, top_n=top_n, atoms=check) for name in names}
    explained = {n: e for n in names if isinstance(e := explanation_or_reason(run, n), Explanation)}
    tops = {name: e.top(top_n) for name, e in explained.items()}
    pairwise = {f"{a}|{b}": metrics.shared_count(tops[a], tops[b]) for a, b in combinations(list(tops), 2)}
    offsets = run.reference.offsets
    rank_correlation = {
        f"{a}|{b}": metrics.mean_rank_correlation(run.scores(a), run.scores(b), offsets)
        for a, b in combinations(names, 2)
    }
    shared_all = set.intersection(*(set(t) for t in tops.values())) if tops else set()
    document = {
        "models": per_model,
        "top_n": top_n,
        "focus_elements": chosen,
        "pairwise_shared": pairwise,
        "pairwise_gradcam_rank_correlation": rank_correlation,
        "shared_by_all": sorted(shared_all),
        "provenance": run.provenance(),
    }
    if atom_settings is not None:
        document["atom_settings"] = atom_settings
    reasons: dict[str, str] = {}
    clean = nulls_with_reasons(document, reasons)
    clean["undefined"] = reasons
    return clean


def nulls_with_reasons(value: Any, reasons: dict[str, str], where: str = "$") -> Any:
    """A JSON-ready copy: numpy scalars become Python ones, every NaN or infinity ``None``, its reason in `reasons`."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        reasons[where] = metrics.why_undefined(value) or "not a finite number"
        return None
    if isinstance(value, Mapping):
        return {str(k): nulls_with_reasons(v, reasons, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nulls_with_reasons(v, reasons, f"{where}[{i}]") for i, v in enumerate(value)]
    return value
