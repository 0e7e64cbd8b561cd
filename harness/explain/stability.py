"""How stable a conclusion is over the choice of structures (bootstrap, seeded).

- :func:`element_mean_intervals`: per-element mean Grad-CAM score with a
  bootstrap interval over structures (each resample draws whole structures,
  so atoms of one structure stay together);
- :func:`top_n_frequency`: how often each feature lands in the top-N SHAP set
  when the structures are resampled (the surrogate is not refitted: its SHAP
  values per structure are re-averaged, which isolates the choice of
  structures from the fit).
Pure numpy on arrays; `mlff-harness measure` reports both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.errors import DataError
from harness.explain.bootstrap import Interval, bootstrap, ratio_of_means


def element_mean_intervals(
    scores: np.ndarray,
    symbols: Sequence[str] | np.ndarray,
    offsets: np.ndarray,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Mean score of each element's atoms, with a bootstrap interval over structures.

    `offsets` has S+1 entries: structure s owns atoms offsets[s]:offsets[s+1].
    The statistic is sum(scores of the element's atoms) / count(those atoms)
    over the resampled structures, i.e. the atom-weighted mean of the point value.
    """
    scores = np.asarray(scores, dtype=float)
    symbol_array = np.asarray(symbols)
    offsets = np.asarray(offsets, dtype=int)
    if scores.shape != symbol_array.shape or scores.ndim != 1:
        raise DataError(f"{scores.shape[0]} scores for {symbol_array.shape[0]} atoms")
    if offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != scores.size or np.any(np.diff(offsets) <= 0):
        raise DataError("offsets must rise from 0 to the number of atoms, one step per structure")
    structure = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    n = offsets.size - 1
    intervals: dict[str, Interval] = {}
    for element in sorted(set(symbol_array.tolist())):
        mask = symbol_array == element
        sums = np.bincount(structure[mask], weights=scores[mask], minlength=n)
        counts = np.bincount(structure[mask], minlength=n).astype(float)
        intervals[element] = bootstrap(
            ratio_of_means(sums, counts), n, n_resamples=n_resamples, level=level, seed=seed
        )
    return intervals


def top_n_frequency(
    shap_values: np.ndarray,
    names: Sequence[str],
    top_n: int,
    *,
    n_resamples: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Share of structure resamples in which each feature is in the top N by mean |SHAP|.

    Returns every feature that reached the top N at least once, most frequent
    first (ties broken by name, as the ranking is).
    """
    values = np.abs(np.asarray(shap_values, dtype=float))
    if values.ndim != 2 or values.shape[1] != len(names):
        raise DataError(f"SHAP values of shape {values.shape} for {len(names)} feature names")
    if not 1 <= top_n <= len(names):
        raise DataError(f"top_n must be in 1..{len(names)}, got {top_n}")
    if n_resamples < 1:
        raise DataError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    counts = np.zeros(len(names))
    order_names = np.argsort(np.asarray(names))  # tie-break by name
    for _ in range(n_resamples):
        importance = values[rng.integers(0, n, size=n)].mean(axis=0)
        ranked = order_names[np.argsort(-importance[order_names], kind="stable")]
        counts[ranked[:top_n]] += 1
    frequency = counts / n_resamples
    seen = [i for i in range(len(names)) if frequency[i] > 0]
    seen.sort(key=lambda i: (-frequency[i], names[i]))
    return {names[i]: float(frequency[i]) for i in seen}
