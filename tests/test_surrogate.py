"""The error surrogate: planted signals are found, noise is not, fits repeat."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pydantic import ValidationError

from harness.errors import CheckError, DataError
from harness.explain.descriptors import soap_feature_names
from harness.explain.surrogate import ErrorSurrogate, error_target, pool_workers, rank_features
from harness.suite.schema import Soap, Surrogate

NAMES = soap_feature_names(Soap(species=["Cr", "Sb", "Te"]))
FAST = Surrogate(n_estimators=60, learning_rate=0.1, max_depth=3)
PLANTED = "Cr-Te_n23_l2"


def _data(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NAMES)))
    x[:, :50] = 0.0  # an all-zero block, as for a species absent from the data
    return x, rng


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x, rng = _data(seed)
    j = NAMES.index(PLANTED)
    y = 3.0 * x[:, j] ** 2 + 0.05 * rng.normal(size=len(x))
    return x, y


def test_planted_feature_ranks_first_and_fit_is_good() -> None:
    x, y = _planted()
    s = ErrorSurrogate(FAST).fit(x, y, NAMES)
    assert s.ranking_[0] == PLANTED
    assert s.cv_r2_ > 0.8
    assert s.cv_r2_folds_.shape == (5,)
    assert s.cv_r2_ == pytest.approx(float(np.mean(s.cv_r2_folds_)))
    assert s.shap_values_.shape == x.shape
    assert s.importance_.shape == (len(NAMES),)
    # the constant block carries no attribution
    assert np.all(s.importance_[:50] == 0.0)
    # TreeSHAP is exact: base value + sum of SHAP = prediction
    explained = s.shap_values_.sum(axis=1)
    pred = s.model_.predict(x)
    assert np.ptp(pred - explained) < 1e-6
    top = s.top(3)
    assert top[0][0] == PLANTED and top[0][1] == pytest.approx(s.importance_.max())
    assert [v for _, v in top] == sorted((v for _, v in top), reverse=True)


def test_pure_noise_has_no_skill() -> None:
    x, rng = _data(1)
    y = rng.normal(size=len(x))
    s = ErrorSurrogate(FAST).fit(x, y, NAMES)
    assert s.cv_r2_ < 0.2


def test_fit_is_deterministic() -> None:
    x, y = _planted(2)
    a = ErrorSurrogate(FAST).fit(x, y, NAMES)
    b = ErrorSurrogate(FAST).fit(x, y, NAMES)
    np.testing.assert_array_equal(a.shap_values_, b.shap_values_)
    np.testing.assert_array_equal(a.cv_r2_folds_, b.cv_r2_folds_)
    assert a.ranking_ == b.ranking_


def test_parallel_folds_equal_a_serial_fit() -> None:
    x, y = _planted(3)
    serial = ErrorSurrogate(FAST, n_jobs=1).fit(x, y, NAMES)
    parallel = ErrorSurrogate(FAST, n_jobs=2).fit(x, y, NAMES)
    np.testing.assert_array_equal(serial.cv_r2_folds_, parallel.cv_r2_folds_)
    np.testing.assert_array_equal(serial.shap_values_, parallel.shap_values_)
    assert serial.ranking_ == parallel.ranking_
    with pytest.raises(CheckError, match="n_jobs=0 must be >= 1"):
        ErrorSurrogate(FAST, n_jobs=0)


@pytest.mark.parametrize(
    ("rows", "features", "settings", "cores", "workers"),
    [
        # benchmarks/README.md, "The surrogate's process pool": the paper's surrogate on the shipped
        # gate's 300 structures x 390 SOAP features is pooled (2-core VM, H200 host: 6 fits, 16 cores)
        (300, 390, Surrogate(), 2, 2),
        (300, 390, Surrogate(), 16, 6),
        # 60 structures: a pool of 2 saves less than its start-up; one per fit saves more
        (60, 390, Surrogate(), 2, 1),
        (60, 390, Surrogate(), 16, 6),
        # a tiny test suite (12 structures, 20 trees of depth 2, 3 folds): never worth a pool
        (12, 390, Surrogate(n_estimators=20, max_depth=2, cv_folds=3), 16, 1),
        (300, 390, Surrogate(), 1, 1),
    ],
)
def test_pool_only_where_it_pays(rows, features, settings, cores, workers) -> None:
    assert pool_workers(rows, features, settings, cores) == workers


def _real_problem(n: int = 40) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The paper's SOAP of the first n shipped test structures; target: their per-atom reference
    energy's residual after a least-squares fit on composition."""
    from pathlib import Path

    from ase.io import read

    from harness.explain.descriptors import soap_features

    path = Path(__file__).resolve().parents[1] / "reference_data" / "cr_sb2te3" / "test.extxyz.gz"
    frames = read(path, index=f":{n}")
    settings = Soap(species=["Cr", "Sb", "Te"])
    counts = np.array([[f.get_chemical_symbols().count(e) for e in settings.species] for f in frames], float)
    energy = np.array([f.info["REF_energy"] for f in frames])
    fit = np.linalg.lstsq(counts, energy, rcond=None)[0]
    return soap_features(frames, settings), (energy - counts @ fit) / counts.sum(axis=1), soap_feature_names(settings)


def test_in_process_and_pooled_fits_are_identical_on_real_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default runs a small fit in this process; a pool gives the same R^2 and SHAP values, bit for bit."""
    x, y, names = _real_problem()
    assert np.ptp(y) > 1e-4 and x.shape == (40, len(NAMES))  # a real, non-constant target
    auto = ErrorSurrogate(FAST).fit(x, y, names)
    assert auto.workers_ == 1
    pooled = ErrorSurrogate(FAST, n_jobs=2).fit(x, y, names)
    assert pooled.workers_ == 2
    assert auto.cv_r2_ == pooled.cv_r2_
    np.testing.assert_array_equal(auto.cv_r2_folds_, pooled.cv_r2_folds_)
    np.testing.assert_array_equal(auto.shap_values_, pooled.shap_values_)
    assert auto.ranking_ == pooled.ranking_
    # the core count comes from joblib: CPU affinity, cgroup quotas and LOKY_MAX_CPU_COUNT bound it
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    assert ErrorSurrogate(Surrogate())._workers(300, 390) == 1  # pooled with 2 cores and more


def test_paper_defaults_find_planted_feature() -> None:
    """Paper settings on 300 samples x the first 100 SOAP features (~10 s)."""
    assert Surrogate() == Surrogate(n_estimators=200, learning_rate=0.05, max_depth=8, cv_folds=5)  # the paper's
    rng = np.random.default_rng(3)
    names = NAMES[:100]
    x = rng.normal(size=(300, len(names)))
    j = names.index("Cr-Sb_n13_l0")
    y = 3.0 * x[:, j] ** 2 + 0.05 * rng.normal(size=len(x))
    t0 = time.perf_counter()
    s = ErrorSurrogate().fit(x, y, names)
    assert time.perf_counter() - t0 < 60
    assert s.ranking_[0] == "Cr-Sb_n13_l0"
    assert s.cv_r2_ > 0.8


def test_ranking_ties_are_broken_by_name() -> None:
    assert rank_features(np.array([1.0, 2.0, 1.0, 0.0]), ["d", "c", "a", "b"]) == [
        "c",
        "a",
        "d",
        "b",
    ]


@pytest.mark.parametrize(
    "x, y, names, match",
    [
        (np.zeros(20), np.zeros(20), ["a"], "2-D"),
        (np.zeros((20, 2)), np.zeros(19), ["a", "b"], "20 rows but y has 19"),
        (np.full((20, 2), np.nan), np.zeros(20), ["a", "b"], "non-finite"),
        (np.zeros((20, 2)), np.full(20, np.inf), ["a", "b"], "non-finite"),
        (np.zeros((9, 2)), np.zeros(9), ["a", "b"], "at least 10 samples"),
        (np.zeros((20, 2)), np.zeros(20), ["a"], "1 feature names for 2"),
        (np.zeros((20, 2)), np.zeros(20), ["a", "a"], "not unique"),
    ],
)
def test_input_validation(x, y, names, match) -> None:
    with pytest.raises(CheckError, match=match):
        ErrorSurrogate(FAST).fit(x, y, names)


def test_top_before_fit_and_bad_settings() -> None:
    with pytest.raises(CheckError):
        ErrorSurrogate().top(3)
    with pytest.raises(ValidationError, match="cv_folds"):  # one settings type: the suite schema's
        Surrogate(cv_folds=1)


def test_error_target_known_answers() -> None:
    e_model = np.array([-10.0, -20.0, -5.0])
    e_ref = np.array([-10.5, -19.0, -5.0])
    n = np.array([5, 10, 1])
    np.testing.assert_allclose(
        error_target(e_model, e_ref, n, kind="signed", per="structure"), [0.5, -1.0, 0.0]
    )
    np.testing.assert_allclose(
        error_target(e_model, e_ref, n, kind="absolute", per="structure"), [0.5, 1.0, 0.0]
    )
    np.testing.assert_allclose(
        error_target(e_model, e_ref, n, kind="signed", per="atom"), [0.1, -0.1, 0.0]
    )
    np.testing.assert_allclose(
        error_target(e_model, e_ref, n, kind="absolute", per="atom"), [0.1, 0.1, 0.0]
    )


def test_error_target_validation() -> None:
    with pytest.raises(DataError, match="structure"):
        error_target([1.0, 2.0], [1.0, 2.0], [3, 0], kind="signed", per="atom")
    with pytest.raises(DataError):
        error_target([1.0, 2.0], [1.0], [3, 3], kind="signed", per="atom")
    with pytest.raises(DataError, match=r"\[1\]"):
        error_target([1.0, np.nan], [1.0, 2.0], [3, 3], kind="signed", per="atom")
    with pytest.raises(CheckError):
        error_target([1.0], [1.0], [1], kind="relu", per="atom")  # type: ignore[arg-type]


# --- the XGBoost surrogate (estimator: xgboost) ------------------------------------------------

FAST_XGB = FAST.model_copy(update={"estimator": "xgboost"})


def test_xgboost_finds_the_planted_feature_and_its_shap_is_shaps() -> None:
    """Known answer as for the paper's booster; XGBoost's own TreeSHAP equals shap's TreeExplainer
    on the same model and sums to the prediction."""
    from harness.explain.shap_tree import tree_explainer, tree_shap

    x, y = _planted()
    s = ErrorSurrogate(FAST_XGB).fit(x, y, NAMES)
    assert type(s.model_).__module__.startswith("xgboost")
    assert s.workers_ == 1  # threads of its own, no process pool
    assert s.ranking_[0] == PLANTED
    assert s.cv_r2_ > 0.8
    assert np.all(s.importance_[:50] == 0.0)
    np.testing.assert_allclose(s.shap_values_, tree_explainer(s.model_).shap_values(x), rtol=1e-5, atol=1e-6)
    prediction = s.model_.predict(x)
    base = prediction - s.shap_values_.sum(axis=1)
    assert np.ptp(base) < 1e-6 * np.abs(prediction).max()  # exact (in XGBoost's float32): one base value
    assert tree_shap(s.model_, x).shape == x.shape


def test_xgboost_surrogate_does_not_depend_on_thread_count_or_feature_units() -> None:
    """The same trees on 1 or 2 threads (a GPU host and a CI runner agree), and in other units:
    exact splits compare values, with no absolute threshold (scikit-learn's trees merge values
    closer than 1e-7, so the paper's booster moves with the units of small features)."""
    import xgboost

    from harness.explain.surrogate import new_estimator

    x, y = _planted()
    x[:, 60:80] *= 1e-6  # features in small units

    def fit(data: np.ndarray, threads: int) -> np.ndarray:
        model = new_estimator(FAST_XGB, seed=0)
        model.set_params(n_jobs=threads)
        return model.fit(data, y).predict(data)

    one = fit(x, 1)
    np.testing.assert_array_equal(one, fit(x, 2))
    np.testing.assert_allclose(fit(x * 1e4, 1), one, rtol=1e-6, atol=1e-6)
    assert xgboost.__version__


def test_a_missing_xgboost_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from harness.explain.surrogate import new_estimator

    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost raises ImportError
    with pytest.raises(CheckError, match=r"estimator: xgboost.*pip install xgboost"):
        new_estimator(FAST_XGB)
