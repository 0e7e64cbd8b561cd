"""Faithfulness by perturbation: planted known answers for atoms (Grad-CAM) and features (SHAP)."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

from harness.errors import CheckError
from harness.explain.bootstrap import bootstrap
from harness.explain.faithfulness import (
    attribution_order,
    perturbation_energies,
    perturbed_copies,
    plan_perturbations,
    r2_score,
    surrogate_ablation,
)

from planted import planted_mace, random_cells

# This module imports shap (and with it numba) into the test process. In-process pytester runs of
# other modules then import dscribe, whose `sparse` dependency registers numba extension types;
# pytester drops those modules after each run and the second registration fails. Importing dscribe
# here keeps numba's registry and sys.modules in step.
importlib.import_module("dscribe.descriptors")


@pytest.fixture(scope="module")
def planted():
    from harness.models.mace.model import MaceModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MaceModel.from_module(planted_mace(), name="planted")
        structures = random_cells(10, seed=0)
        out = model.evaluate(structures, batch_size=10)
    scores = [out.scores("relu")[a:b] for a, b in zip(out.offsets[:-1], out.offsets[1:], strict=True)]
    return model, structures, scores


def _energies(model, structures, scores, **kw):

    settings = dict(k_max=2, draws=4, amplitude_A=0.1, seed=0, structures_per_call=len(structures))
    settings.update(kw)
    return perturbation_energies(model.energies, structures, scores, **settings)


def test_planted_atom_ranked_first_and_ratio_far_above_one(planted) -> None:
    model, structures, scores = planted
    energies = _energies(model, structures, scores)
    cr = [a.get_chemical_symbols().index("Cr") for a in structures]
    assert energies.top_atoms[:, 0].tolist() == cr
    ratio = bootstrap(energies.ratio_statistic(1), len(structures), n_resamples=500, seed=0)
    # the planted atom moves the energy ~3x more than a random atom; the whole interval is above 1.5
    assert ratio.point > 2.5 and ratio.low > 1.5, ratio
    area = bootstrap(energies.area_statistic(), len(structures), n_resamples=500, seed=0)
    assert area.low > 0.15, area


def test_shuffled_scores_give_a_ratio_near_one(planted) -> None:
    model, structures, scores = planted
    # twelve independent shuffles of each structure's scores: the planted atom carries most of |dE|,
    # so chance needs many rankings to show (each replica draws its own directions and atoms).
    # Measured coverage: for seeds 0..7 the 95% interval contains 1 seven times out of eight.
    rng = np.random.default_rng(0)
    replicas = structures * 12
    shuffled = [rng.permutation(s) for s in scores * 12]
    energies = _energies(model, replicas, shuffled, k_max=1, draws=2)
    ratio = bootstrap(energies.ratio_statistic(1), len(replicas), n_resamples=500, seed=0)
    area = bootstrap(energies.area_statistic(), len(replicas), n_resamples=500, seed=0)
    # a random ranking is the random arm in disguise: chance (1, resp. 0) lies inside the interval
    assert ratio.low <= 1.0 <= ratio.high, ratio
    assert area.low <= 0.0 <= area.high, area


def test_batched_copies_equal_one_structure_at_a_time(planted) -> None:

    model, structures, scores = planted
    structures, scores = structures[:2], scores[:2]
    batched = _energies(model, structures, scores, k_max=1, draws=2)
    per_structure = _energies(model, structures, scores, k_max=1, draws=2, structures_per_call=1)
    np.testing.assert_array_equal(batched.top_atoms, per_structure.top_atoms)
    for s, atoms in enumerate(structures):
        plan = plan_perturbations(scores[s], k_max=1, draws=2, amplitude_A=0.1, rng=np.random.default_rng([0, s]))
        alone = np.array([model.energies([copy])[0] for copy in perturbed_copies(atoms, plan)])
        together = np.concatenate([[batched.reference_eV[s]], batched.top_eV[s].ravel(), batched.random_eV[s].ravel()])
        np.testing.assert_allclose(together, alone, rtol=1e-8, atol=0)
        np.testing.assert_allclose(
            np.concatenate([[per_structure.reference_eV[s]], per_structure.top_eV[s].ravel()]),
            alone[:3], rtol=1e-8, atol=0,
        )


def test_plan_moves_exactly_the_planned_atoms_by_the_amplitude() -> None:
    scores = np.array([0.1, 0.9, 0.0, 0.5, 0.0, 0.2])
    plan = plan_perturbations(scores, k_max=3, draws=2, amplitude_A=0.25, rng=np.random.default_rng(0))
    assert plan.order.tolist() == [1, 3, 5, 0, 2, 4]  # ties (2, 4) by index
    shifts = plan.displacements()
    assert shifts.shape == (1 + 2 * 3 * 2, 6, 3)
    norms = np.linalg.norm(shifts, axis=2)
    assert np.all(norms[0] == 0)
    moved = [set(np.flatnonzero(row > 0)) for row in norms[1:]]
    # top arm: k = 1, 1, 2, 2, 3, 3 (two draws each); random arm: prefixes of each draw's permutation
    assert moved[:6] == [{1}, {1}, {1, 3}, {1, 3}, {1, 3, 5}, {1, 3, 5}]
    for i, (k, d) in enumerate([(k, d) for k in (1, 2, 3) for d in (0, 1)]):
        assert moved[6 + i] == set(plan.random_orders[d, :k].tolist())
    np.testing.assert_allclose(norms[norms > 0], 0.25)


def test_plan_and_order_validation() -> None:
    assert attribution_order(np.array([0.0, 0.0, 1.0])).tolist() == [2, 0, 1]
    with pytest.raises(CheckError, match="more than 3 atoms"):
        plan_perturbations(np.zeros(3), k_max=3, draws=1, amplitude_A=0.1, rng=np.random.default_rng(0))


def test_r2_score_known_answers() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2_score(y, y) == pytest.approx(1.0)
    assert r2_score(y, np.full(4, 2.5)) == pytest.approx(0.0)
    np.testing.assert_allclose(r2_score(y, np.vstack([y, np.full(4, 2.5)])), [1.0, 0.0])
    assert np.isnan(r2_score(np.ones(3), np.ones(3)))


def _gbr():
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(n_estimators=60, max_depth=3, learning_rate=0.1, random_state=0)


def test_surrogate_ablation_finds_the_one_named_feature() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(160, 8))
    names = [f"f{i}" for i in range(8)]
    y = np.sin(3 * X[:, 5]) + rng.normal(0, 0.05, size=160)  # depends on f5 only
    result = surrogate_ablation(X, y, names, make_model=_gbr, top_n=1, draws=20, holdout_fraction=0.3, seed=0)
    assert result.top_features == ("f5",)
    r2, top_drop, random_drop = result.drops()
    assert r2 > 0.9  # the surrogate fits: the drops are evidence
    assert top_drop > 0.8  # removing f5 removes (nearly) everything the surrogate knows
    # a random feature is f5 one time in eight: the mean random drop is about top_drop / 8
    assert random_drop < 3 * top_drop / 8
    ratio = bootstrap(result.ratio_statistic(), len(result.y), n_resamples=300, seed=0)
    assert ratio.low > 4.0, ratio


def test_surrogate_ablation_validates_its_inputs() -> None:
    X, y = np.zeros((10, 3)), np.zeros(10)
    with pytest.raises(CheckError, match="top_n = 3"):
        surrogate_ablation(X, y, ["a", "b", "c"], make_model=_gbr, top_n=3, draws=1, holdout_fraction=0.3, seed=0)
    with pytest.raises(CheckError, match="at least 3"):
        surrogate_ablation(X, y, ["a", "b", "c"], make_model=_gbr, top_n=1, draws=1, holdout_fraction=0.1, seed=0)
