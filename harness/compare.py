"""Cross-model comparisons: every metric of every model of a suite, for analysis and calibration.

`mlff-harness measure SUITE` prints what :func:`measure_models` returns; the
thresholds of a gate are chosen from these numbers and recorded beside it.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from harness import metrics
from harness.session import SuiteRun
from harness.stability import element_mean_intervals, top_n_frequency


def measure_model(run: SuiteRun, name: str, *, element: str = "Cr", top_k: int = 10, top_n: int = 20) -> dict[str, Any]:
    """Accuracy, Grad-CAM summaries and SHAP summaries of one model."""
    ref = run.reference
    raw = run.outputs(name).gradcam_raw
    scores = run.scores(name)
    explanation = run.explanation(name)
    top = explanation.top(top_n)
    element_ci = element_mean_intervals(scores, ref.symbols, ref.offsets, seed=run.suite.settings.seed)
    top10_atoms = [
        ref.symbols[ref.offsets[i] + metrics.top_k_indices(s, top_k)].tolist()
        for i, s in enumerate(metrics.split(scores, ref.offsets))
    ]
    return {
        "accuracy": run.accuracy(name),
        "gradcam": {
            "variant": run.suite.attribution.variant,
            "normalisation": run.suite.attribution.normalisation,
            "per_element_mean": metrics.per_element_mean(scores, ref.symbols),
            "per_element_mean_ci95": {el: [iv.low, iv.high] for el, iv in element_ci.items()},
            "overall_mean": float(np.mean(scores)),
            "max": float(np.max(scores)),
            "relu_zero_fraction": metrics.relu_zero_fraction(raw),
            "mean_ratio_to_host": metrics.mean_ratio_to_host(scores, ref.symbols, element),
            "top_k_share": metrics.top_k_share(scores, ref.symbols, ref.offsets, element, top_k),
            "top_k_identity": {
                el: float(np.mean([atoms.count(el) / len(atoms) for atoms in top10_atoms]))
                for el in ref.elements
            },
        },
        "shap": {
            "surrogate_cv_r2": explanation.cv_r2,
            "top": [{"name": n, "mean_abs_shap": v} for n, v in zip(top, explanation.importance_of(top))],
            # share of 200 structure resamples in which each feature is in the top N
            "top_n_frequency": top_n_frequency(
                explanation.shap_values, explanation.feature_names, top_n, seed=run.suite.settings.seed
            ),
            "involving_share": metrics.share_involving(top, element),
            "angular_histogram": {str(k): v for k, v in metrics.angular_histogram(top).items()},
            "pair_histogram": metrics.pair_histogram(top),
            "top_to_second_ratio": float(explanation.importance_of(top[:1])[0] / explanation.importance_of(top[1:2])[0])
            if len(top) > 1 and explanation.importance_of(top[1:2])[0] > 0
            else None,
        },
    }


def measure_models(run: SuiteRun, *, top_n: int = 20) -> dict[str, Any]:
    """measure_model for every model, plus pairwise and all-model top-N overlaps."""
    names = run.suite.models.names()
    per_model = {name: measure_model(run, name, top_n=top_n) for name in names}
    tops = {name: run.explanation(name).top(top_n) for name in names}
    pairwise = {f"{a}|{b}": metrics.shared_count(tops[a], tops[b]) for a, b in combinations(names, 2)}
    offsets = run.reference.offsets
    rank_correlation = {
        f"{a}|{b}": metrics.mean_rank_correlation(run.scores(a), run.scores(b), offsets)
        for a, b in combinations(names, 2)
    }
    shared_all = set.intersection(*(set(t) for t in tops.values())) if tops else set()
    return {
        "models": per_model,
        "top_n": top_n,
        "pairwise_shared": pairwise,
        "pairwise_gradcam_rank_correlation": rank_correlation,
        "shared_by_all": sorted(shared_all),
        "provenance": run.provenance(),
    }
