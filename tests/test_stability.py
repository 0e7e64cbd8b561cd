"""Bootstrap stability of per-element Grad-CAM means and top-N SHAP membership (known answers)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError
from harness.explain.stability import element_mean_intervals, top_n_frequency


def test_element_means_equal_the_point_value_and_a_constant_has_no_spread() -> None:
    # two structures: (Cr 1.0, Te 0.2, Te 0.4) and (Cr 1.0, Te 0.6)
    scores = np.array([1.0, 0.2, 0.4, 1.0, 0.6])
    symbols = ["Cr", "Te", "Te", "Cr", "Te"]
    out = element_mean_intervals(scores, symbols, np.array([0, 3, 5]), n_resamples=200, seed=1)
    assert out["Cr"].point == out["Cr"].low == out["Cr"].high == 1.0
    assert out["Te"].point == pytest.approx(0.4)  # atom-weighted: (0.2 + 0.4 + 0.6) / 3
    # resampling whole structures: Te means are 0.3 (first twice) .. 0.6 (second twice)
    assert 0.3 - 1e-12 <= out["Te"].low < out["Te"].point < out["Te"].high <= 0.6 + 1e-12


def test_element_interval_shrinks_like_one_over_root_n() -> None:
    rng = np.random.default_rng(0)

    def width(n_structures: int) -> float:
        scores = rng.normal(1.0, 0.5, size=n_structures * 4)
        offsets = np.arange(0, n_structures * 4 + 1, 4)
        iv = element_mean_intervals(scores, ["Sb"] * scores.size, offsets, n_resamples=500)["Sb"]
        return iv.high - iv.low

    assert width(400) == pytest.approx(width(100) / 2, rel=0.25)


def test_a_dominant_feature_is_always_in_the_top_and_a_one_structure_spike_is_not() -> None:
    rng = np.random.default_rng(3)
    shap = rng.normal(0, 0.01, size=(50, 6))
    shap[:, 0] += 1.0  # large in every structure
    shap[7, 5] = 3.0  # large in one structure only: top-2 by mean (0.06 > noise) but fragile
    names = [f"f{i}" for i in range(6)]
    freq = top_n_frequency(shap, names, 2, n_resamples=300, seed=0)
    assert freq["f0"] == 1.0
    assert 0.5 < freq["f5"] < 1.0  # in the top 2 only when structure 7 is drawn (1 - (49/50)^50 = 0.64)
    assert list(freq)[0] == "f0"
    assert sum(freq.values()) == pytest.approx(2.0)


def test_bad_inputs_are_data_errors() -> None:
    with pytest.raises(DataError):
        element_mean_intervals(np.ones(3), ["Cr"] * 3, np.array([0, 2]))
    with pytest.raises(DataError):
        top_n_frequency(np.ones((4, 3)), ["a", "b"], 1)
    with pytest.raises(DataError):
        top_n_frequency(np.ones((4, 2)), ["a", "b"], 3)
