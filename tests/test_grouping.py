"""Grouped SHAP, class keys, stratified atom sampling and structure-grouped CV folds."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import CheckError, DataError
from harness.explain.atom_explain import force_error_norm, stratified_atoms
from harness.explain.grouping import class_of, feature_classes, grouped_importance, shell_range_of_pair
from harness.explain.surrogate import ErrorSurrogate
from harness.suite.schema import Surrogate


def test_class_keys_of_pair_shell_and_soap_names() -> None:
    assert class_of("Te|Cr@2.75-3.00A", "pair") == "Cr-Te"  # unordered, atomic-number order
    assert class_of("Te|Cr@2.75-3.00A", "directed") == "Te|Cr"
    assert class_of("Te|Cr@2.75-3.00A", "centre") == "Te"
    assert class_of("Te|Cr@2.75-3.00A", "neighbour") == "Cr"
    assert class_of("Te|Cr@2.75-3.00A", "shell") == "2.75-3.00A"
    assert class_of("centre=Cr", "pair") == "centre=Cr"
    assert class_of("centre=Cr", "centre") == "Cr"
    assert class_of("Sb-Te_n13_l3", "pair") == "Sb-Te"
    assert class_of("Sb-Te_n13_l3", "angular") == "l=3"
    assert class_of("Sb-Te_n13_l3", "radial") == "n13"
    with pytest.raises(CheckError, match="no 'centre' class"):
        class_of("Sb-Te_n13_l3", "centre")
    assert feature_classes(["Cr|Te@2.00-2.25A", "Te|Cr@2.00-2.25A", "Te|Te@2.00-2.25A"], "pair") == {
        "Cr-Te": [0, 1],
        "Te-Te": [2],
    }


def test_correlated_members_do_not_split_their_class_credit() -> None:
    # the signal is carried by three copies of one feature (SHAP splits it three ways
    # per feature), a single weaker feature of another class takes the per-feature top spot
    rng = np.random.default_rng(0)
    signal = rng.normal(size=500)
    weaker = 0.5 * rng.normal(size=500)
    shap_values = np.stack([signal / 3, signal / 3, signal / 3, weaker], axis=1)
    names = ["Cr|Cr@3.00-3.25A", "Cr|Cr@3.25-3.50A", "Cr|Cr@3.50-3.75A", "Sb|Te@3.00-3.25A"]
    per_feature = np.mean(np.abs(shap_values), axis=0)
    assert per_feature.argmax() == 3
    grouped = grouped_importance(shap_values, names, "pair")
    assert grouped.classes == ("Cr-Cr", "Sb-Te")
    assert grouped.importance[0] == pytest.approx(np.mean(np.abs(signal)))
    assert grouped.share("Cr-Cr") == pytest.approx(grouped.importance[0] / sum(grouped.importance))
    assert grouped.rank("Sb-Te") == 2 and grouped.rank("Cr-Sb") == 3
    # sum per sample BEFORE |.|: opposite members cancel
    cancel = grouped_importance(np.array([[1.0, -1.0]]), names[:2], "pair")
    assert cancel.importance == (0.0,)


def test_shell_range_of_the_pair_class() -> None:
    names = ["Cr|Cr@3.00-3.25A", "Cr|Cr@3.25-3.50A", "Cr|Cr@4.00-4.25A", "Cr|Te@3.00-3.25A"]
    values = np.array([[0.5, 0.4, 0.1, 9.0], [0.5, 0.4, 0.1, 9.0]])
    assert shell_range_of_pair(values, names, "Cr-Cr", share=0.8) == (3.0, 3.5)
    assert shell_range_of_pair(values, names, "Cr-Cr", share=0.99) == (3.0, 4.25)
    assert shell_range_of_pair(values, names, "Sb-Te") is None


def test_stratified_sample_is_seeded_balanced_and_grouped() -> None:
    symbols = ["Sb"] * 50 + ["Te"] * 40 + ["Cr"] * 2 + ["Te"] * 8
    sample = stratified_atoms(symbols, [60, 40], max_atoms=30, seed=3)
    chosen = np.asarray(symbols)[sample.atoms]
    assert sorted(chosen.tolist()).count("Cr") == 2  # every Cr atom; the rest split evenly
    assert (chosen == "Sb").sum() == 14 and (chosen == "Te").sum() == 14
    assert np.array_equal(sample.atoms, stratified_atoms(symbols, [60, 40], 30, 3).atoms)
    assert not np.array_equal(sample.atoms, stratified_atoms(symbols, [60, 40], 30, 4).atoms)
    assert np.array_equal(sample.structure, (sample.atoms >= 60).astype(int))
    assert np.array_equal(np.concatenate([sample.atoms_of[0], sample.atoms_of[1] + 60]), sample.atoms)
    with pytest.raises(DataError):
        stratified_atoms(symbols, [60, 30], 30, 0)


def test_force_error_norm() -> None:
    assert force_error_norm(np.array([[3.0, 4.0, 0.0]]), np.zeros((1, 3))).tolist() == [5.0]
    with pytest.raises(DataError):
        force_error_norm(np.zeros((2, 3)), np.zeros((3, 3)))


def test_grouped_folds_keep_each_structure_in_one_fold() -> None:
    from harness.explain.surrogate import _group_folds

    groups = np.repeat(np.arange(12), 5)
    folds = _group_folds(groups, len(groups), 4, seed=0)
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(60))
    # atoms that copy their structure's value: ungrouped folds see each structure in training
    # and score ~1; grouped folds face unseen structures and cannot
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 10)
    y = rng.normal(size=40)[groups]
    x = np.stack([groups + 0.0, rng.normal(size=400)], axis=1)  # the structure index is a lookup key
    fast = Surrogate(n_estimators=100, learning_rate=0.3, max_depth=8, cv_folds=4)
    hist = "hist_gradient_boosting"
    free = ErrorSurrogate(fast, estimator=hist, n_jobs=1).fit(x, y, ["a", "b"])
    grouped = ErrorSurrogate(fast, estimator=hist, n_jobs=1).fit(x, y, ["a", "b"], groups=groups)

    assert free.cv_r2_ > 0.5
    assert grouped.cv_r2_ < 0.2
