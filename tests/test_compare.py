"""`mlff-harness measure` (harness.reports.measure) on a real tiny two-model run: stability fields agree with the point
values; the CLI shares the cache pytest writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.gate.session import RunOptions, SuiteRun
from harness.reports.measure import measure_models
from harness.suite.loader import load_suite

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


def test_cli_measure_after_a_pytest_run_reuses_its_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One cache folder: pytest's default and the CLI's are both ./.harness-cache, with the same keys, so
    `mlff-harness measure` after a gate run evaluates no model again (an evaluation here would raise)."""
    import subprocess
    import sys

    from harness.cli.main import main
    from harness.gate.session import SuiteRun

    suite = build_tiny_suite(tmp_path / "run")
    root = suite.parent
    gate = subprocess.run([sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, cwd=root, timeout=600)
    assert gate.returncode == 0, gate.stdout[-3000:] + gate.stderr[-3000:]
    outputs = root / ".harness-cache" / "outputs"
    before = {p.name: p.stat().st_mtime_ns for p in outputs.iterdir()}
    assert len(before) == 2  # the candidate and the compare_with model (the shap_classes check runs on both)

    def no_evaluation(self: SuiteRun, name: str) -> None:
        raise AssertionError(f"model {name!r} evaluated again: the CLI missed pytest's cache")

    monkeypatch.setattr(SuiteRun, "_evaluate", no_evaluation)
    monkeypatch.chdir(root)
    out = root / "measure.json"
    tables = root / "tables.md"
    assert main(["measure", str(suite), "--no-atoms", "--top-n", "5", "-o", str(out), "--markdown", str(tables)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in outputs.iterdir()} == before
    assert set(json.loads(out.read_text())["models"]) == {"candidate", "other"}
    assert tables.read_text().count("\n|") > 2  # markdown tables, written atomically (no temporary file left)
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(("tables", "measure"))) == ["measure.json",
                                                                                             "tables.md"]
