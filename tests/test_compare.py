"""`mlff-harness measure` (harness.compare) on a real tiny two-model run: stability fields agree with the point values."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.compare import measure_models
from harness.loader import load_suite
from harness.session import RunOptions, SuiteRun
from tiny_run import build_tiny_suite


def test_measure_reports_intervals_and_top_n_frequency(tmp_path: Path) -> None:
    run = SuiteRun(load_suite(build_tiny_suite(tmp_path)), RunOptions(cache_dir=None, progress=False))
    doc = measure_models(run, top_n=5)
    for name in ("candidate", "other"):
        model = doc["models"][name]
        means, ci = model["gradcam"]["per_element_mean"], model["gradcam"]["per_element_mean_ci95"]
        assert set(ci) == set(means)
        for element, (low, high) in ci.items():
            assert low - 1e-12 <= means[element] <= high + 1e-12
        top = [t["name"] for t in model["shap"]["top"]]
        frequency = model["shap"]["top_n_frequency"]
        assert sum(frequency.values()) == pytest.approx(5.0)  # five members in every resample
        assert all(0 < f <= 1 for f in frequency.values())
        assert frequency[top[0]] == pytest.approx(max(frequency.values()))
    assert set(doc["pairwise_shared"]) == {"candidate|other"}
