"""The numbers checks compare: pure functions on arrays, testable on known answers.

Units are in the names. Per-atom arrays are concatenated over structures with
``offsets`` (length S+1) marking where each structure starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from harness.explain.descriptors import involves, parse_feature_name

# --- undefined values ---------------------------------------------------------------------------

# A surrogate target (an energy error) whose standard deviation is below 1 micro-eV is constant: that is
# below the precision of labels stored in text files and 500x below the best energy errors in the paper.
ZERO_VARIANCE_eV = 1e-6


class Undefined(float):
    """A value that is undefined (an absent element, constant scores, an empty group, ...), with the reason.

    It is a NaN, so arithmetic and ``np.isnan`` treat it as one; :func:`why_undefined`
    reads the reason back. Reports write it as ``null`` with the reason, and a
    gated metric that is undefined fails its check with that reason.
    """

    __slots__ = ("reason",)
    reason: str

    def __new__(cls, reason: str) -> Undefined:
        value = super().__new__(cls, "nan")
        value.reason = reason
        return value

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (Undefined, (self.reason,))

    def __repr__(self) -> str:
        return f"Undefined({self.reason!r})"


def undefined(reason: str) -> float:
    """An undefined value (a NaN) that says why."""
    return Undefined(reason)


def why_undefined(value: object) -> str | None:
    """The reason a value is undefined: its own, or a generic one for a bare NaN or infinity; None if finite."""
    if isinstance(value, Undefined):
        return value.reason
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"not a number ({value!r})"
    if np.isnan(number):
        return "not a number (NaN)"
    if np.isinf(number):
        return f"unbounded ({number}: a ratio over a zero denominator?)"
    return None


def constant_structures(scores: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boolean per structure: every atom has the same score (no atom ranks above another)."""
    return np.array([s.size == 0 or bool(np.all(s == s[0])) for s in split(np.asarray(scores), offsets)], dtype=bool)


# --- accuracy -----------------------------------------------------------------------------------


def rmse(errors: np.ndarray) -> float:
    """Root mean square of an error array (any shape)."""
    errors = np.asarray(errors, dtype=float)
    if errors.size == 0:
        return undefined("no values to average")
    return float(np.sqrt(np.mean(errors**2)))


def mae(errors: np.ndarray) -> float:
    """Mean absolute value of an error array (any shape)."""
    errors = np.asarray(errors, dtype=float)
    if errors.size == 0:
        return undefined("no values to average")
    return float(np.mean(np.abs(errors)))


def energy_errors_meV_per_atom(e_model_eV: np.ndarray, e_ref_eV: np.ndarray, n_atoms: np.ndarray) -> np.ndarray:
    """Per-structure energy error divided by the atom count, in meV/atom."""
    return 1000.0 * (np.asarray(e_model_eV) - np.asarray(e_ref_eV)) / np.asarray(n_atoms)


def accuracy_metrics(
    e_model_eV: np.ndarray,
    e_ref_eV: np.ndarray,
    f_model_eV_per_A: np.ndarray,
    f_ref_eV_per_A: np.ndarray,
    n_atoms: np.ndarray,
) -> dict[str, float]:
    """Energy (meV/atom) and force-component (meV/A) RMSE and MAE."""
    de = energy_errors_meV_per_atom(e_model_eV, e_ref_eV, n_atoms)
    df = 1000.0 * (np.asarray(f_model_eV_per_A) - np.asarray(f_ref_eV_per_A))
    return {
        "energy_rmse_meV_per_atom": rmse(de),
        "energy_mae_meV_per_atom": mae(de),
        "force_rmse_meV_per_A": rmse(df),
        "force_mae_meV_per_A": mae(df),
    }


def force_errors_by_element(
    f_model_eV_per_A: np.ndarray, f_ref_eV_per_A: np.ndarray, symbols: np.ndarray
) -> dict[str, dict[str, float]]:
    """Force-component RMSE and MAE (meV/A) over the atoms of each element."""
    df = 1000.0 * (np.asarray(f_model_eV_per_A, dtype=float) - np.asarray(f_ref_eV_per_A, dtype=float))
    symbols = np.asarray(symbols)
    if df.shape[0] != symbols.shape[0]:
        raise ValueError(f"{df.shape[0]} force rows for {symbols.shape[0]} atoms")
    return {
        str(el): {"force_rmse_meV_per_A": rmse(df[symbols == el]), "force_mae_meV_per_A": mae(df[symbols == el])}
        for el in sorted(set(symbols.tolist()))
    }


def accuracy_by_group(
    e_model_eV: np.ndarray,
    e_ref_eV: np.ndarray,
    f_model_eV_per_A: np.ndarray,
    f_ref_eV_per_A: np.ndarray,
    n_atoms: np.ndarray,
    labels: Sequence[str],
) -> dict[str, dict[str, float]]:
    """:func:`accuracy_metrics` over the structures of each group label (one label per structure)."""
    n_atoms = np.asarray(n_atoms)
    labels_arr = np.asarray(labels, dtype=object)
    if labels_arr.shape != n_atoms.shape:
        raise ValueError(f"{labels_arr.shape[0]} group labels for {n_atoms.shape[0]} structures")
    atom_group = np.repeat(labels_arr, n_atoms)
    out = {}
    for label in sorted(set(labels_arr.tolist())):
        s_mask, a_mask = labels_arr == label, atom_group == label
        out[str(label)] = accuracy_metrics(
            np.asarray(e_model_eV)[s_mask],
            np.asarray(e_ref_eV)[s_mask],
            np.asarray(f_model_eV_per_A)[a_mask],
            np.asarray(f_ref_eV_per_A)[a_mask],
            n_atoms[s_mask],
        )
    return out


# --- Grad-CAM -----------------------------------------------------------------------------------


def split(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """One array per structure."""
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def normalise_per_structure(scores: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Divide each structure's scores by its largest |score| (a structure of zeros stays zero)."""
    out = np.array(scores, dtype=float, copy=True)
    for i in range(len(offsets) - 1):
        part = out[offsets[i] : offsets[i + 1]]
        scale = np.max(np.abs(part)) if part.size else 0.0
        if scale > 0:
            part /= scale
    return out


def normalise_by(scores: np.ndarray, scale: float) -> np.ndarray:
    """Divide by one scale shared by a comparison (e.g. the max over every model)."""
    if scale <= 0 or not np.isfinite(scale):
        return np.array(scores, dtype=float, copy=True)
    return np.asarray(scores, dtype=float) / scale


def relu_zero_fraction(raw: np.ndarray) -> float:
    """Fraction of atoms whose raw Grad-CAM sum is <= 0, i.e. zeroed by the ReLU."""
    raw = np.asarray(raw, dtype=float)
    return float(np.mean(raw <= 0.0)) if raw.size else undefined("no atoms")


def per_element_mean(scores: np.ndarray, symbols: np.ndarray) -> dict[str, float]:
    """Mean score of the atoms of each element."""
    symbols, scores = np.asarray(symbols), np.asarray(scores)
    return {str(el): float(np.mean(scores[symbols == el])) for el in sorted(set(symbols.tolist()))}


def mean_ratio_to_host(scores: np.ndarray, symbols: np.ndarray, element: str) -> float:
    """Mean score of `element` over the mean score of every other atom.

    Undefined (a NaN with its reason) if `element` is absent, if every atom is
    `element`, or if the host atoms' mean score is 0 (the ratio is unbounded or 0/0).
    """
    symbols = np.asarray(symbols)
    mask = symbols == element
    if not mask.any():
        return undefined(f"no {element} atom in the structures (elements: {', '.join(sorted(set(symbols.tolist())))})")
    if mask.all():
        return undefined(f"every atom is {element}: there is no host to compare with")
    mine, host = float(np.mean(scores[mask])), float(np.mean(scores[~mask]))
    if host == 0.0:
        if mine > 0:
            return undefined(f"the host atoms' mean score is 0 and {element}'s is not: the ratio is unbounded")
        return undefined(f"the mean score of {element} and of the host atoms are both 0 (Grad-CAM all zero?)")
    return mine / host


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, ties broken by index (stable, deterministic)."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores)))
    return order[: min(k, len(scores))]


def top_k_share(scores: np.ndarray, symbols: np.ndarray, offsets: np.ndarray, element: str, k: int) -> float:
    """Share of each structure's top-k atoms that are `element`, averaged over structures containing it.

    The share is over the atoms actually ranked, min(k, structure size); a
    structure with n atoms of `element` scores at most n/min(k, size). It is not
    rescaled by the dopant count, so compare it with the dopant counts of the data.
    Structures whose scores are all equal rank no atom above another and are
    left out. Undefined (with its reason) when no structure is left.
    """
    shares, with_element = [], 0
    for s, sym in zip(split(scores, offsets), split(np.asarray(symbols), offsets), strict=True):
        if not np.any(sym == element):
            continue
        with_element += 1
        if np.all(s == s[0]):
            continue
        top = top_k_indices(s, k)
        shares.append(float(np.mean(sym[top] == element)))
    if not with_element:
        return undefined(f"no structure contains {element}")
    if not shares:
        return undefined(
            f"the scores are constant within each of the {with_element} structure(s) containing {element} "
            "(Grad-CAM all zero?): no atom ranks above another"
        )
    return float(np.mean(shares))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN if either input is constant."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"spearman needs equal shapes, got {a.shape} and {b.shape}")
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def rank_correlations(a: np.ndarray, b: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per-structure Spearman correlation of per-atom scores (NaN where either is constant)."""
    return np.array([spearman(x, y) for x, y in zip(split(a, offsets), split(b, offsets), strict=True)], dtype=float)


def mean_rank_correlation(a: np.ndarray, b: np.ndarray, offsets: np.ndarray) -> float:
    """Mean over structures of the Spearman correlation of per-atom scores (NaN structures skipped)."""
    values = [spearman(x, y) for x, y in zip(split(a, offsets), split(b, offsets), strict=True)]
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return undefined(
            f"the scores are constant within every one of the {len(values)} structure(s) in one of the two maps "
            "(Grad-CAM all zero?): no rank correlation"
        )
    return float(np.mean(finite))


# --- SHAP feature classes -----------------------------------------------------------------------


def share_involving(names: Sequence[str], element: str) -> float:
    """Share of feature names whose species pair contains `element`."""
    return float(np.mean([involves(n, element) for n in names])) if names else undefined("no ranked features")


def share_with_l(names: Sequence[str], ls: Sequence[int]) -> float:
    """Share of feature names whose angular channel is in `ls`."""
    wanted = set(ls)
    if not names:
        return undefined("no ranked features")
    return float(np.mean([parse_feature_name(n).l in wanted for n in names]))


def share_with_radial(names: Sequence[str], ns: Sequence[int]) -> float:
    """Share of feature names with a radial index (n or n') in `ns` (1-based)."""
    wanted = set(ns)
    if not names:
        return undefined("no ranked features")
    infos = [parse_feature_name(n) for n in names]
    return float(np.mean([info.n in wanted or info.n_prime in wanted for info in infos]))


def share_of_pair(names: Sequence[str], pair: Sequence[str]) -> float:
    """Share of feature names of one species pair (order-insensitive)."""
    target = tuple(sorted(pair))
    if not names:
        return undefined("no ranked features")
    return float(np.mean([tuple(sorted(parse_feature_name(n).pair)) == target for n in names]))


def angular_histogram(names: Sequence[str]) -> dict[int, float]:
    """Share of feature names in each angular channel l."""
    ls = [parse_feature_name(n).l for n in names]
    return {int(l): ls.count(l) / len(ls) for l in sorted(set(ls))} if ls else {}  # noqa: E741 - l: the angular channel


def pair_histogram(names: Sequence[str]) -> dict[str, float]:
    """Share of feature names of each species pair ('Cr-Te')."""
    pairs = ["-".join(parse_feature_name(n).pair) for n in names]
    return {p: pairs.count(p) / len(pairs) for p in sorted(set(pairs))} if pairs else {}


def shared_count(a: Sequence[str], b: Sequence[str]) -> int:
    """How many features are in both sets."""
    return len(set(a) & set(b))


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    """|A & B| / |A | B|."""
    union = set(a) | set(b)
    return len(set(a) & set(b)) / len(union) if union else undefined("both feature sets are empty")


def coefficient_of_variation(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """std/mean along an axis (NaN where the mean is 0): consensus features have a low CV across models."""
    values = np.asarray(values, dtype=float)
    mean = values.mean(axis=axis)
    std = values.std(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean != 0, std / mean, np.nan)
