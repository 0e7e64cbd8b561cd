"""CPU micro-benchmarks with pytest-benchmark (not collected by ``pytest tests``).

    pytest benchmarks/micro -p no:cacheprovider --benchmark-columns=min,median,rounds

Each benchmark also checks its result, so a fast wrong answer fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from harness.explain import metrics
from harness.explain.descriptors import soap_feature_names, soap_features
from harness.explain.surrogate import ErrorSurrogate
from harness.models.neighbours import neighbour_list
from harness.suite.schema import Soap, Surrogate

pytest.importorskip("pytest_benchmark")

N_ATOMS = 120


@pytest.fixture(scope="module")
def frames() -> list:
    from benchmarks.data import frames as load

    return load(32)


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n_structures = 500
    offsets = np.arange(n_structures + 1) * N_ATOMS
    symbols = np.array((["Cr"] * 3 + ["Sb"] * 45 + ["Te"] * 72) * n_structures)
    a = rng.random(n_structures * N_ATOMS)
    b = a + 0.1 * rng.random(a.size)
    return a, b, symbols, offsets


def test_metric_mean_rank_correlation(benchmark, scores) -> None:
    a, b, _, offsets = scores
    value = benchmark(metrics.mean_rank_correlation, a, b, offsets)
    assert 0.9 < value < 1.0


def test_metric_top_k_share(benchmark, scores) -> None:
    a, _, symbols, offsets = scores
    value = benchmark(metrics.top_k_share, a, symbols, offsets, "Cr", 10)
    assert 0.0 <= value <= 0.3


def test_metric_accuracy(benchmark) -> None:
    rng = np.random.default_rng(1)
    n = np.full(500, N_ATOMS)
    e = rng.normal(size=500)
    f = rng.normal(size=(500 * N_ATOMS, 3))
    result = benchmark(metrics.accuracy_metrics, e + 0.12, e, f, f, n)
    assert result["energy_rmse_meV_per_atom"] == pytest.approx(1.0)  # 0.12 eV / 120 atoms
    assert result["force_rmse_meV_per_A"] == 0.0


def test_neighbour_list_120_atoms(benchmark, frames) -> None:
    atoms = frames[0]
    result = benchmark(neighbour_list, atoms.positions, atoms.cell.array, atoms.pbc, 6.0)
    assert result.n_edges > 20 * N_ATOMS


def test_soap_32_frames(benchmark, frames) -> None:
    settings = Soap(species=["Cr", "Sb", "Te"])
    x = benchmark.pedantic(soap_features, args=(frames, settings), rounds=3, iterations=1)
    assert x.shape == (32, len(soap_feature_names(settings)))


def test_soap_rocksalt_cell(benchmark) -> None:
    atoms = bulk("SbTe", "rocksalt", a=6.0, cubic=True).repeat(2)
    atoms[0].symbol = "Cr"
    x = benchmark(soap_features, [atoms], Soap(species=["Cr", "Sb", "Te"]))
    assert np.all(np.isfinite(x))


def test_surrogate_fit_and_treeshap_200(benchmark) -> None:
    """200 samples x 390 features, planted signal on feature 7: it must rank first."""
    rng = np.random.default_rng(2)
    x = rng.random((200, 390))
    y = 3.0 * x[:, 7] + 0.05 * rng.random(200)
    names = [f"f{i:03d}" for i in range(390)]
    settings = Surrogate(n_estimators=50, max_depth=4)
    fitted = benchmark.pedantic(lambda: ErrorSurrogate(settings).fit(x, y, names), rounds=2, iterations=1)
    assert fitted.ranking_[0] == "f007" and fitted.cv_r2_ > 0.9
