"""Known-answer tests for harness.explain.metrics (pure functions on arrays)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.errors import CheckError
from harness.explain import metrics

FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


# --- accuracy -----------------------------------------------------------------------------------


def test_rmse_mae_known_answers() -> None:
    errors = np.array([3.0, -4.0])
    assert metrics.rmse(errors) == pytest.approx(math.sqrt(12.5))
    assert metrics.mae(errors) == pytest.approx(3.5)
    grid = np.array([[1.0, -1.0], [1.0, -1.0]])
    assert metrics.rmse(grid) == pytest.approx(1.0)
    assert metrics.mae(grid) == pytest.approx(1.0)
    assert metrics.rmse([0, 0, 0]) == 0.0
    assert metrics.mae([2]) == 2.0


def test_rmse_mae_empty_is_nan() -> None:
    assert math.isnan(metrics.rmse(np.array([])))
    assert math.isnan(metrics.mae(np.array([])))


def test_energy_errors_meV_per_atom() -> None:
    out = metrics.energy_errors_meV_per_atom(
        np.array([-10.0, -20.0]), np.array([-10.1, -19.9]), np.array([10, 20])
    )
    np.testing.assert_allclose(out, [10.0, -5.0])


def test_accuracy_metrics_known_offset() -> None:
    rng = np.random.default_rng(0)
    f_ref = rng.normal(size=(7, 3))
    f_model = f_ref + 0.01  # every component off by 0.01 eV/A
    n_atoms = np.array([3, 4])
    e_ref = np.array([-5.0, -8.0])
    e_model = e_ref + 0.002 * n_atoms  # 2 meV/atom each
    acc = metrics.accuracy_metrics(e_model, e_ref, f_model, f_ref, n_atoms)
    assert set(acc) == {
        "energy_rmse_meV_per_atom",
        "energy_mae_meV_per_atom",
        "force_rmse_meV_per_A",
        "force_mae_meV_per_A",
    }
    assert acc["force_rmse_meV_per_A"] == pytest.approx(10.0)
    assert acc["force_mae_meV_per_A"] == pytest.approx(10.0)
    assert acc["energy_rmse_meV_per_atom"] == pytest.approx(2.0)
    assert acc["energy_mae_meV_per_atom"] == pytest.approx(2.0)


def test_accuracy_metrics_mixed_energy_errors() -> None:
    acc = metrics.accuracy_metrics(
        np.array([1.0, 0.0]), np.array([0.0, 0.0]), np.zeros((3, 3)), np.zeros((3, 3)), np.array([1, 2])
    )
    # errors per atom: [1000, 0] meV/atom
    assert acc["energy_rmse_meV_per_atom"] == pytest.approx(1000 / math.sqrt(2))
    assert acc["energy_mae_meV_per_atom"] == pytest.approx(500.0)
    assert acc["force_rmse_meV_per_A"] == 0.0


# --- Grad-CAM -----------------------------------------------------------------------------------


def test_split() -> None:
    parts = metrics.split(np.arange(5), np.array([0, 2, 5]))
    assert [p.tolist() for p in parts] == [[0, 1], [2, 3, 4]]


def test_normalise_per_structure() -> None:
    scores = np.array([1.0, 2.0, -4.0, 0.0, 0.0, 3.0, 1.5])
    offsets = np.array([0, 3, 5, 7])
    out = metrics.normalise_per_structure(scores, offsets)
    np.testing.assert_allclose(out, [0.25, 0.5, -1.0, 0.0, 0.0, 1.0, 0.5])
    for part in metrics.split(out, offsets):
        assert np.max(np.abs(part)) in (0.0, 1.0)
    # the input is not modified
    np.testing.assert_array_equal(scores, [1.0, 2.0, -4.0, 0.0, 0.0, 3.0, 1.5])


def test_normalise_per_structure_integer_input_and_empty_structure() -> None:
    out = metrics.normalise_per_structure(np.array([2, 4]), np.array([0, 0, 2]))
    np.testing.assert_allclose(out, [0.5, 1.0])


def test_normalise_by() -> None:
    np.testing.assert_allclose(metrics.normalise_by(np.array([1.0, 2.0]), 4.0), [0.25, 0.5])
    np.testing.assert_allclose(metrics.normalise_by(np.array([1.0, 2.0]), 0.0), [1.0, 2.0])
    np.testing.assert_allclose(metrics.normalise_by(np.array([1.0, 2.0]), float("nan")), [1.0, 2.0])


def test_relu_zero_fraction() -> None:
    assert metrics.relu_zero_fraction(np.array([-1.0, 0.0, 2.0, 3.0])) == pytest.approx(0.5)
    assert metrics.relu_zero_fraction(np.array([1.0])) == 0.0
    assert math.isnan(metrics.relu_zero_fraction(np.array([])))


def test_per_element_mean() -> None:
    scores = np.array([1.0, 3.0, 10.0, 0.5])
    symbols = np.array(["Sb", "Sb", "Cr", "Te"])
    assert metrics.per_element_mean(scores, symbols) == {"Cr": 10.0, "Sb": 2.0, "Te": 0.5}
    assert list(metrics.per_element_mean(scores, symbols)) == ["Cr", "Sb", "Te"]


def test_mean_ratio_to_host() -> None:
    scores = np.array([6.0, 1.0, 2.0, 3.0])
    symbols = np.array(["Cr", "Sb", "Te", "Te"])
    assert metrics.mean_ratio_to_host(scores, symbols, "Cr") == pytest.approx(3.0)
    assert math.isnan(metrics.mean_ratio_to_host(scores, symbols, "V"))  # absent
    assert math.isnan(metrics.mean_ratio_to_host(scores, np.array(["Cr"] * 4), "Cr"))  # no host
    zero_host = np.array([2.0, 0.0, 0.0, 0.0])
    unbounded = metrics.mean_ratio_to_host(zero_host, symbols, "Cr")
    assert math.isnan(unbounded) and "the ratio is unbounded" in metrics.why_undefined(unbounded)
    assert math.isnan(metrics.mean_ratio_to_host(np.zeros(4), symbols, "Cr"))  # 0/0
    assert "both 0" in metrics.why_undefined(metrics.mean_ratio_to_host(np.zeros(4), symbols, "Cr"))
    assert metrics.why_undefined(metrics.mean_ratio_to_host(scores, symbols, "V")).startswith("no V atom")


def test_top_k_indices_ties_broken_by_index() -> None:
    scores = np.array([1.0, 5.0, 5.0, 2.0, 5.0])
    assert metrics.top_k_indices(scores, 2).tolist() == [1, 2]
    assert metrics.top_k_indices(scores, 4).tolist() == [1, 2, 4, 3]
    assert metrics.top_k_indices(scores, 10).tolist() == [1, 2, 4, 3, 0]
    assert metrics.top_k_indices(np.zeros(3), 3).tolist() == [0, 1, 2]


def test_top_k_share_planted() -> None:
    # structure 0: 6 atoms, 2 Cr with the highest scores; structure 1: 6 atoms, 4 Cr on top;
    # structure 2: no Cr (skipped even though its scores are high).
    symbols = np.array(
        ["Sb", "Cr", "Te", "Cr", "Te", "Sb"]
        + ["Cr", "Cr", "Te", "Cr", "Cr", "Sb"]
        + ["Sb", "Te", "Te"]
    )
    scores = np.array(
        [0.1, 0.9, 0.2, 0.8, 0.3, 0.0]
        + [0.9, 0.8, 0.1, 0.7, 0.6, 0.2]
        + [9.0, 9.0, 9.0]
    )
    offsets = np.array([0, 6, 12, 15])
    k = 3
    # expected per structure: min(n_Cr, k)/k -> 2/3 and 1
    expected = np.mean([min(2, k) / k, min(4, k) / k])
    assert metrics.top_k_share(scores, symbols, offsets, "Cr", k) == pytest.approx(expected)
    assert metrics.top_k_share(scores, symbols, offsets, "Cr", 1) == pytest.approx(1.0)
    assert math.isnan(metrics.top_k_share(scores, symbols, offsets, "V", 3))


def test_top_k_share_low_scores_give_zero() -> None:
    symbols = np.array(["Cr", "Te", "Te", "Te"])
    scores = np.array([0.0, 1.0, 2.0, 3.0])
    assert metrics.top_k_share(scores, symbols, np.array([0, 4]), "Cr", 2) == 0.0


def test_spearman() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert metrics.spearman(a, a * 10 + 1) == pytest.approx(1.0)
    assert metrics.spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(metrics.spearman(a, np.ones(4)))
    assert math.isnan(metrics.spearman(np.ones(4), a))
    assert math.isnan(metrics.spearman(np.array([1.0]), np.array([2.0])))
    with pytest.raises(ValueError, match="equal shapes"):
        metrics.spearman(a, a[:3])


def test_mean_rank_correlation() -> None:
    a = np.array([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 5.0, 5.0])
    b = np.array([1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 1.0, 2.0])
    offsets = np.array([0, 3, 6, 8])
    # +1, -1, NaN (constant a) -> mean of the finite ones = 0
    assert metrics.mean_rank_correlation(a, b, offsets) == pytest.approx(0.0)
    assert metrics.mean_rank_correlation(a[:3], b[:3], np.array([0, 3])) == pytest.approx(1.0)
    assert math.isnan(metrics.mean_rank_correlation(np.ones(3), b[:3], np.array([0, 3])))


# --- SHAP feature classes -----------------------------------------------------------------------

NAMES = ["Cr-Cr_n13_l3", "Sb-Te_n22_l1", "Cr-Te_n11_l0", "Te-Te_n44_l3"]


def test_share_involving() -> None:
    assert metrics.share_involving(NAMES, "Cr") == pytest.approx(0.5)
    assert metrics.share_involving(NAMES, "Te") == pytest.approx(0.75)
    assert metrics.share_involving(NAMES, "V") == 0.0
    assert math.isnan(metrics.share_involving([], "Cr"))


def test_share_with_l() -> None:
    assert metrics.share_with_l(NAMES, [3]) == pytest.approx(0.5)
    assert metrics.share_with_l(NAMES, [0, 1]) == pytest.approx(0.5)
    assert metrics.share_with_l(NAMES, [2]) == 0.0
    assert math.isnan(metrics.share_with_l([], [3]))


def test_share_of_pair_order_insensitive() -> None:
    assert metrics.share_of_pair(NAMES, ("Te", "Sb")) == pytest.approx(0.25)
    assert metrics.share_of_pair(NAMES, ("Sb", "Te")) == pytest.approx(0.25)
    assert metrics.share_of_pair(NAMES, ("Cr", "Cr")) == pytest.approx(0.25)
    assert math.isnan(metrics.share_of_pair([], ("Cr", "Te")))


def test_angular_and_pair_histograms() -> None:
    assert metrics.angular_histogram(NAMES) == {0: 0.25, 1: 0.25, 3: 0.5}
    assert metrics.angular_histogram([]) == {}
    assert metrics.pair_histogram(NAMES) == {"Cr-Cr": 0.25, "Cr-Te": 0.25, "Sb-Te": 0.25, "Te-Te": 0.25}
    assert metrics.pair_histogram([]) == {}
    assert sum(metrics.angular_histogram(NAMES).values()) == pytest.approx(1.0)


def test_bad_feature_name_is_an_error() -> None:
    with pytest.raises(CheckError):
        metrics.share_with_l(["not-a-feature"], [0])


def test_shared_count_and_jaccard() -> None:
    a = ["Cr-Cr_n13_l3", "Sb-Te_n22_l1", "Cr-Te_n11_l0"]
    b = ["Cr-Te_n11_l0", "Sb-Te_n22_l1", "Te-Te_n44_l3", "Te-Te_n44_l3"]
    assert metrics.shared_count(a, b) == 2
    assert metrics.jaccard(a, b) == pytest.approx(2 / 4)
    assert metrics.jaccard(a, a) == 1.0
    assert metrics.jaccard(a, []) == 0.0
    assert math.isnan(metrics.jaccard([], []))


def test_coefficient_of_variation() -> None:
    values = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]])
    cv = metrics.coefficient_of_variation(values)
    # column 0: mean 2, std 1 -> 0.5; column 1: mean 0 -> NaN; column 2: std 0 -> 0
    assert cv[0] == pytest.approx(0.5)
    assert math.isnan(cv[1])
    assert cv[2] == 0.0
    np.testing.assert_allclose(metrics.coefficient_of_variation(values.T, axis=1), cv, equal_nan=True)


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 30), elements=FINITE))
def test_rmse_ge_mae_ge_zero(errors: np.ndarray) -> None:
    r, m = metrics.rmse(errors), metrics.mae(errors)
    assert m >= 0.0
    assert r >= m * (1 - 1e-12) - 1e-12


@st.composite
def _structures(draw):  # type: ignore[no-untyped-def]
    sizes = draw(st.lists(st.integers(0, 6), min_size=1, max_size=5))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    scores = draw(arrays(np.float64, int(offsets[-1]), elements=FINITE))
    return scores, offsets


@settings(max_examples=60, deadline=None)
@given(_structures())
def test_normalise_per_structure_idempotent(case) -> None:  # type: ignore[no-untyped-def]
    scores, offsets = case
    once = metrics.normalise_per_structure(scores, offsets)
    twice = metrics.normalise_per_structure(once, offsets)
    np.testing.assert_allclose(twice, once, rtol=1e-12, atol=0)
    assert np.all(np.abs(once) <= 1.0)


@settings(max_examples=60, deadline=None)
@given(_structures(), st.integers(1, 8), st.randoms(use_true_random=False))
def test_top_k_share_in_unit_interval(case, k, rnd) -> None:  # type: ignore[no-untyped-def]
    scores, offsets = case
    symbols = np.array([rnd.choice(["Cr", "Sb", "Te"]) for _ in range(len(scores))], dtype="<U2")
    share = metrics.top_k_share(scores, symbols, offsets, "Cr", k)
    ranked = [
        not np.all(s == s[0])
        for s, sym in zip(metrics.split(scores, offsets), metrics.split(symbols, offsets), strict=True)
        if "Cr" in sym.tolist()
    ]
    if any(ranked):
        assert 0.0 <= share <= 1.0
    else:  # no Cr, or every Cr structure has constant scores: undefined, with the reason
        assert math.isnan(share)
        assert metrics.why_undefined(share) in (
            "no structure contains Cr",
            f"the scores are constant within each of the {len(ranked)} structure(s) containing Cr "
            "(Grad-CAM all zero?): no atom ranks above another",
        )


@settings(max_examples=60, deadline=None)
@given(
    # integer-valued floats: the transforms below keep distinct values distinct and ties tied
    arrays(np.float64, 8, elements=st.integers(-50, 50).map(float)),
    arrays(np.float64, 8, elements=st.integers(-50, 50).map(float)),
)
def test_spearman_invariant_under_monotone_transform(a: np.ndarray, b: np.ndarray) -> None:
    base = metrics.spearman(a, b)
    # strictly increasing maps that preserve ties exactly
    transformed = metrics.spearman(np.exp(a / 50.0) * 3.0 + 1.0, b**3 + 2.0 * b)
    if math.isnan(base):
        assert math.isnan(transformed)
    else:
        assert transformed == pytest.approx(base, abs=1e-9)


def test_share_with_radial_counts_n_or_n_prime() -> None:
    from harness.explain.metrics import share_with_radial

    names = ["Cr-Cr_n13_l3", "Sb-Te_n22_l1", "Te-Te_n44_l0", "Cr-Te_n41_l2"]
    assert share_with_radial(names, [1]) == pytest.approx(0.5)  # n13 and n41
    assert share_with_radial(names, [2, 4]) == pytest.approx(0.75)
    assert np.isnan(share_with_radial([], [1]))


# --- issue 10: accuracy broken down, per-structure rank correlations ---------------------------


def test_force_errors_by_element_known_answer() -> None:
    from harness.explain.metrics import force_errors_by_element

    symbols = np.array(["Cr", "Te", "Te"])
    ref = np.zeros((3, 3))
    model = np.array([[0.003, 0.0, -0.004], [0.001, 0.001, 0.001], [-0.001, -0.001, -0.001]])  # eV/A
    out = force_errors_by_element(model, ref, symbols)
    # Cr: components (3, 0, -4) meV/A -> RMSE sqrt(25/3), MAE 7/3; Te: six components of 1 meV/A
    assert out["Cr"]["force_rmse_meV_per_A"] == pytest.approx(np.sqrt(25 / 3))
    assert out["Cr"]["force_mae_meV_per_A"] == pytest.approx(7 / 3)
    assert out["Te"] == pytest.approx({"force_rmse_meV_per_A": 1.0, "force_mae_meV_per_A": 1.0})
    with pytest.raises(ValueError):
        force_errors_by_element(model, ref, symbols[:2])


def test_accuracy_by_group_equals_accuracy_of_each_subset() -> None:
    from harness.explain.metrics import accuracy_by_group

    n_atoms = np.array([2, 3, 2])
    e_ref = np.zeros(3)
    e_model = np.array([0.002, 0.006, -0.004])  # eV: 1, 2, -2 meV/atom
    f_ref = np.zeros((7, 3))
    f_model = np.zeros((7, 3))
    f_model[2:5] = 0.010  # every force component of structure 1 is off by 10 meV/A
    out = accuracy_by_group(e_model, e_ref, f_model, f_ref, n_atoms, ["a", "b", "a"])
    assert sorted(out) == ["a", "b"]
    assert out["a"]["energy_rmse_meV_per_atom"] == pytest.approx(np.sqrt((1 + 4) / 2))
    assert out["a"]["force_rmse_meV_per_A"] == 0.0
    assert out["b"]["energy_mae_meV_per_atom"] == pytest.approx(2.0)
    assert out["b"]["force_rmse_meV_per_A"] == pytest.approx(10.0)
    with pytest.raises(ValueError):
        accuracy_by_group(e_model, e_ref, f_model, f_ref, n_atoms, ["a", "b"])


def test_rank_correlations_per_structure() -> None:
    from harness.explain.metrics import rank_correlations

    a = np.array([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 5.0, 5.0])
    b = np.array([1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 1.0, 2.0])
    out = rank_correlations(a, b, np.array([0, 3, 6, 8]))
    assert out[0] == pytest.approx(1.0) and out[1] == pytest.approx(-1.0) and np.isnan(out[2])


def test_undefined_is_a_nan_with_its_reason() -> None:
    import pickle

    value = metrics.undefined("no Cr atom")
    assert math.isnan(value) and np.isnan(value)
    assert metrics.why_undefined(value) == "no Cr atom"
    assert metrics.why_undefined(pickle.loads(pickle.dumps(value))) == "no Cr atom"
    assert metrics.why_undefined(1.5) is None
    assert metrics.why_undefined(float("nan")) == "not a number (NaN)"
    assert metrics.why_undefined(float("inf")) == "unbounded (inf: a ratio over a zero denominator?)"
    assert metrics.why_undefined(metrics.rmse(np.zeros(0))) == "no values to average"


def test_top_k_share_leaves_out_constant_structures() -> None:
    symbols = np.array(["Cr", "Sb", "Te", "Cr", "Sb", "Te"])
    offsets = np.array([0, 3, 6])
    scores = np.array([0.0, 0.0, 0.0, 0.9, 0.1, 0.2])  # the first structure ranks nothing
    assert metrics.top_k_share(scores, symbols, offsets, "Cr", 1) == 1.0
    assert math.isnan(metrics.top_k_share(np.zeros(6), symbols, offsets, "Cr", 1))


def test_mean_rank_correlation_of_constant_maps_is_undefined() -> None:
    offsets = np.array([0, 3, 6])
    value = metrics.mean_rank_correlation(np.zeros(6), np.arange(6.0), offsets)
    assert "no rank correlation" in metrics.why_undefined(value)
