"""What a results document records about each evaluated model beyond its checks.

The checks of a suite gate a few numbers; a person reading a report wants the
rest too: per-element Grad-CAM, the distribution of per-atom scores, the top-N
SHAP features with their values and the surrogate's R^2, pairwise top-N
overlaps, and one structure with its per-atom scores for a picture. These are
computed from the same (cached) :class:`~harness.gate.session.SuiteRun`. Only the
SHAP part can be expensive (one surrogate fit per model, about a minute for 300
structures on two cores): ``explain="computed"`` records it for the models whose
surrogate this run already fitted for a check, ``"all"`` fits the rest too
(cached on disk like every surrogate), ``"none"`` leaves it out.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Literal

import numpy as np

from harness.errors import CheckError, HarnessError
from harness.explain import metrics
from harness.gate.session import SuiteRun

HISTOGRAM_BINS = 30
Explain = Literal["all", "computed", "none"]


def _explained_here(run: SuiteRun) -> set[str]:
    """Models whose surrogate this run has already fitted or loaded (SuiteRun keeps them in `_explanations`)."""
    return set(getattr(run, "_explanations", {}))


def _score_histogram(scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """Counts of per-atom scores of every model on shared bin edges (so curves overlay)."""
    values = np.concatenate(list(scores.values())) if scores else np.zeros(0)
    lo = float(np.min(values)) if values.size else 0.0
    hi = float(np.max(values)) if values.size else 1.0
    if not hi > lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    return {
        "edges": edges.tolist(),
        "counts": {name: np.histogram(s, bins=edges)[0].astype(int).tolist() for name, s in scores.items()},
    }


def _gradcam_summary(run: SuiteRun, name: str) -> dict[str, Any]:
    ref = run.reference
    scores = run.scores(name)
    raw = run.outputs(name).gradcam_raw
    quantiles = np.quantile(scores, [0.5, 0.9, 0.99])
    return {
        "variant": run.suite.attribution.variant,
        "normalisation": run.suite.attribution.normalisation,
        "per_element_mean": metrics.per_element_mean(scores, ref.symbols),
        "overall_mean": float(np.mean(scores)),
        "max": float(np.max(scores)),
        "median": float(quantiles[0]),
        "p90": float(quantiles[1]),
        "p99": float(quantiles[2]),
        "relu_zero_fraction": metrics.relu_zero_fraction(raw),
    }


def _shap_summary(run: SuiteRun, name: str, top_n: int) -> dict[str, Any]:
    try:
        explanation = run.explanation(name)
    except HarnessError as err:  # e.g. too few structures for k-fold CV: say so, do not fail the run
        return {"error": str(err)}
    top = explanation.top(top_n)
    return {
        "surrogate_cv_r2": explanation.cv_r2,
        "surrogate_cv_r2_folds": [float(v) for v in explanation.cv_r2_folds],
        "target": run.suite.surrogate.target,
        "per": run.suite.surrogate.per,
        "top": [{"name": n, "mean_abs_shap": v} for n, v in zip(top, explanation.importance_of(top), strict=True)],
        "angular_histogram": {str(k): v for k, v in metrics.angular_histogram(top).items()},
        "pair_histogram": metrics.pair_histogram(top),
    }


def _structure_view(run: SuiteRun, names: list[str]) -> dict[str, Any]:
    """The structure holding the first model's highest-scored atom, with every model's scores on it."""
    ref = run.reference
    first = run.scores(names[0])
    index = int(np.searchsorted(ref.offsets, int(np.argmax(first)), side="right") - 1)
    atoms = ref.structures[index]
    lo, hi = int(ref.offsets[index]), int(ref.offsets[index + 1])
    return {
        "index": index,
        "frame": int(ref.frame_indices[index]),
        "chosen_by": f"highest per-atom score of model {names[0]!r}",
        "symbols": list(atoms.get_chemical_symbols()),
        "positions_A": np.asarray(atoms.get_positions(), dtype=float).round(4).tolist(),
        "cell_A": np.asarray(atoms.cell[:], dtype=float).round(4).tolist(),
        "scores": {n: run.scores(n)[lo:hi].tolist() for n in names},
    }


def _atoms_summary(run: SuiteRun, name: str, fit: bool) -> dict[str, Any] | None:
    """The per-atom classes of a model (harness.reports.atom_summary).

    Computed by a check of this run, else fitted if `fit`.
    """
    from harness.reports.atom_summary import (
        atom_check_for,
        atom_summary,
        class_structure_view,
        computed_atom_explanation,
        summarise,
    )

    explanation = computed_atom_explanation(run, name)
    if explanation is not None:
        return {**summarise(explanation, run.reference.symbols), "structure": class_structure_view(run, explanation)}
    if not fit:
        return None
    summary = atom_summary(run, name, atom_check_for(run)[0], structure=True)
    return {"error": summary["error"]} if "error" in summary else summary


def suite_section(
    run: SuiteRun, *, top_n: int = 20, explain: Explain = "computed", explain_atoms: bool = False
) -> dict[str, Any]:
    """The part of a results document that describes one suite run.

    ``suite``, ``provenance`` (versions, hashes, settings) and ``accuracy`` of
    each evaluated model, plus ``models`` (Grad-CAM and, per ``explain``, SHAP
    summaries; ``atoms``: the per-atom classes where a check of this run
    computed them, or for every model with ``explain_atoms``), ``score_histogram``,
    ``pairwise_shared`` (top-``top_n`` overlaps of the explained models) and
    ``structure_view``.
    """
    if explain not in ("all", "computed", "none"):
        raise CheckError(f"explain must be 'all', 'computed' or 'none', not {explain!r}")
    names = run.evaluated_models()
    section: dict[str, Any] = {
        "suite": run.suite.suite,
        "provenance": run.provenance(),
        "accuracy": {n: run.accuracy(n) for n in names},
        "top_n": top_n,
        "models": {},
        "pairwise_shared": {},
    }
    if not names:
        return section
    already = _explained_here(run)
    for name in names:
        entry: dict[str, Any] = {"sha256": run.identity(name), "gradcam": _gradcam_summary(run, name)}
        if explain == "all" or (explain == "computed" and name in already):
            entry["shap"] = _shap_summary(run, name, top_n)
        atoms = _atoms_summary(run, name, explain_atoms)
        if atoms is not None:
            entry["atoms"] = atoms
        section["models"][name] = entry
    section["score_histogram"] = _score_histogram({n: run.scores(n) for n in names})
    tops = {
        n: run.explanation(n).top(top_n)
        for n, entry in section["models"].items()
        if "shap" in entry and "error" not in entry["shap"]
    }
    section["pairwise_shared"] = {
        f"{a}|{b}": metrics.shared_count(tops[a], tops[b]) for a, b in combinations(list(tops), 2)
    }
    section["structure_view"] = _structure_view(run, names)
    return section
