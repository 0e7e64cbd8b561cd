"""Grouped SHAP: credit of feature classes, summed per sample before |.|.

When several features of one class are correlated (every shell of a pair,
every radial channel of a SOAP block), TreeSHAP splits the class's credit
among them in ways that depend on which one a tree happened to split on, so
per-feature rankings scatter it. Summing the SHAP values of a class's members
*per sample* first, then taking mean |.| over samples, gives the class the
credit of its members together (SHAP values are additive: the sum is the
contribution of the class as a coalition, in the same units as the target).

Class keys, by ``by``:

* pair-shell names (``Cr|Te@2.75-3.00A``, ``centre=Cr``; :mod:`harness.explain.pair_shells`):
  ``pair`` -> unordered pair ``Cr-Te`` (atomic-number order; ``centre=Cr``
  indicators form their own class ``centre=Cr``), ``directed`` -> ``Cr|Te``,
  ``centre`` -> ``Cr``, ``neighbour`` -> ``Te`` (indicators: ``centre=Cr``),
  ``shell`` -> ``2.75-3.00A``;
* SOAP names (``Cr-Te_n13_l3``; :mod:`harness.explain.descriptors`): ``pair`` ->
  ``Cr-Te``, ``angular`` -> ``l=3``, ``radial`` -> ``n13``, ``centre``/
  ``neighbour`` are not defined (a SOAP block is symmetric in its species).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from ase.data import atomic_numbers as _ATOMIC_NUMBERS

from harness.errors import CheckError

GroupBy = Literal["pair", "directed", "centre", "neighbour", "shell", "angular", "radial"]
GROUP_BYS: tuple[str, ...] = ("pair", "directed", "centre", "neighbour", "shell", "angular", "radial")


def pair_key(a: str, b: str) -> str:
    """The unordered pair ``a-b`` in atomic-number order (``Te, Cr`` -> ``Cr-Te``)."""
    first, second = sorted((a, b), key=lambda s: _ATOMIC_NUMBERS[s])
    return f"{first}-{second}"


def class_of(name: str, by: GroupBy) -> str:
    """The class key of one feature name (pair-shell or SOAP)."""
    from harness.explain.descriptors import parse_feature_name
    from harness.explain.pair_shells import is_pair_shell_name, parse_pair_shell_name

    if by not in GROUP_BYS:
        raise CheckError(f"group by {by!r} is not one of {', '.join(GROUP_BYS)}")
    if is_pair_shell_name(name):
        info = parse_pair_shell_name(name)
        if info.is_indicator:
            return info.centre if by == "centre" else f"centre={info.centre}"
        if by == "pair":
            return pair_key(info.centre, info.neighbour)  # type: ignore[arg-type]
        if by == "directed":
            return f"{info.centre}|{info.neighbour}"
        if by == "centre":
            return info.centre
        if by == "neighbour":
            return str(info.neighbour)
        if by == "shell":
            return f"{info.lo_A:.2f}-{info.hi_A:.2f}A"
        raise CheckError(f"pair-shell features have no {by!r} class (use pair, directed, centre, neighbour or shell)")
    soap = parse_feature_name(name)
    if by == "pair":
        return pair_key(*soap.pair)
    if by == "angular":
        return f"l={soap.l}"
    if by == "radial":
        return f"n{soap.n}{soap.n_prime}"
    raise CheckError(f"SOAP features have no {by!r} class (use pair, angular or radial)")


def feature_classes(names: Sequence[str], by: GroupBy) -> dict[str, list[int]]:
    """Class key -> column indices of its members, in order of first appearance."""
    out: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        out.setdefault(class_of(name, by), []).append(index)
    return out


@dataclass(frozen=True)
class GroupedImportance:
    """Grouped SHAP of one model: classes by importance, descending."""

    by: str
    classes: tuple[str, ...]  # ranked
    importance: tuple[float, ...]  # mean over samples of |sum of the class's SHAP values|
    per_sample: np.ndarray  # (samples, classes) summed SHAP, columns in ranked order

    def share(self, key: str) -> float:
        """The class's importance over the sum of every class's importance (0 for an unknown class)."""
        total = float(np.sum(self.importance))
        if key not in self.classes or total == 0:
            return 0.0
        return self.importance[self.classes.index(key)] / total

    def rank(self, key: str) -> int:
        """1-based rank of the class (len + 1 when absent)."""
        return self.classes.index(key) + 1 if key in self.classes else len(self.classes) + 1

    def top(self, n: int) -> list[tuple[str, float]]:
        return list(zip(self.classes[:n], self.importance[:n], strict=True))


def grouped_importance(shap_values: np.ndarray, names: Sequence[str], by: GroupBy) -> GroupedImportance:
    """Sum SHAP values per sample over each class, then rank classes by mean |sum|."""
    values = np.asarray(shap_values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(names):
        raise CheckError(f"SHAP values of shape {values.shape} do not match {len(names)} feature names")
    classes = feature_classes(names, by)
    keys = list(classes)
    summed = np.stack([values[:, classes[k]].sum(axis=1) for k in keys], axis=1)
    importance = np.mean(np.abs(summed), axis=0)
    order = sorted(range(len(keys)), key=lambda i: (-importance[i], keys[i]))
    return GroupedImportance(
        by=by,
        classes=tuple(keys[i] for i in order),
        importance=tuple(float(importance[i]) for i in order),
        per_sample=summed[:, order],
    )


def shell_range_of_pair(
    shap_values: np.ndarray, names: Sequence[str], pair: str, *, share: float = 0.5
) -> tuple[float, float] | None:
    """Distance range (A) of the fewest adjacent shells that carry ``share`` of the pair class's shell credit.

    Within the pair-shell features of ``pair`` (unordered, e.g. ``Cr-Te``),
    shells are grouped over both directions, ranked by grouped mean |SHAP|, and
    added best first until their sum reaches ``share`` of the total; the range
    spans the lowest to the highest shell taken. None when the pair has no
    pair-shell feature or no credit.
    """
    from harness.explain.pair_shells import is_pair_shell_name, parse_pair_shell_name

    keep = [
        i
        for i, name in enumerate(names)
        if is_pair_shell_name(name)
        and not parse_pair_shell_name(name).is_indicator
        and class_of(name, "pair") == pair
    ]
    if not keep:
        return None
    values = np.asarray(shap_values, dtype=np.float64)[:, keep]
    sub = grouped_importance(values, [names[i] for i in keep], "shell")
    total = sum(sub.importance)
    if total == 0:
        return None
    taken: list[str] = []
    acc = 0.0
    for key, value in zip(sub.classes, sub.importance, strict=True):
        taken.append(key)
        acc += value
        if acc >= share * total:
            break
    bounds = [tuple(float(v) for v in key[:-1].split("-")) for key in taken]
    return min(b[0] for b in bounds), max(b[1] for b in bounds)
