"""Regression baselines: written on request, refused when made with other settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tiny_run import build_tiny_suite

pytest_plugins = ["pytester"]

REGRESSION = """\
  - regression:
      name: drift
      baseline: baseline.json
      top_n: 10
      gradcam_rank_correlation: {min: 0.99}
      shap_top_shared: {min: 10}
      surrogate_cv_r2: {min: -1000.0}   # the tiny surrogate explains little; these tests are about the baseline
"""


def _suite(root: Path) -> Path:
    suite = build_tiny_suite(root)
    suite.write_text(suite.read_text() + REGRESSION)
    return suite


def _run(pytester: pytest.Pytester, suite: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(str(suite), "-p", "no:cacheprovider", "--harness-no-cache", *extra)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny suite whose baseline was written by --harness-regen-baselines."""
    import subprocess
    import sys

    suite = _suite(tmp_path_factory.mktemp("baseline") / "suite")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "--harness-no-cache",
         "--harness-regen-baselines", "-q", f"--harness-results={suite.parent / 'regen.json'}"],
        capture_output=True, text=True, cwd=suite.parent, timeout=600,
    )
    # a regeneration fails the run (as pytest-regressions' --force-regen does), saying what was written
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"baseline written to {suite.parent / 'baseline.json'} (--harness-regen-baselines)" in proc.stdout
    assert "rerun without the flag to gate" in proc.stdout
    regen = json.loads((suite.parent / "regen.json").read_text())  # the results document does not say passed either
    (drift,) = [o for o in regen["outcomes"] if o["kind"] == "regression"]
    assert regen["passed"] is False and drift["passed"] is False and "baseline written to" in drift["reason"]
    return suite


def test_baseline_records_what_its_shap_ranking_depends_on(regenerated: Path) -> None:
    doc = json.loads((regenerated.parent / "baseline.json").read_text())
    assert doc["surrogate"]["target"] == "absolute" and doc["surrogate"]["seed"] == 0
    assert doc["surrogate"]["n_estimators"] == 20  # the tiny suite's, not the default
    assert doc["descriptor"]["soap"]["r_cut_A"] == 5.0
    assert len(doc["shap_ranking"]) == 50


def test_same_model_against_its_own_baseline_passes(pytester: pytest.Pytester, regenerated: Path) -> None:
    run = _run(pytester, regenerated)
    run.assert_outcomes(passed=5)  # accuracy, locus, shap_classes on two models, drift
    run.stdout.fnmatch_lines(["*candidate*drift*shap_top_shared*10*PASS*"])


def test_other_surrogate_target_is_refused(pytester: pytest.Pytester, regenerated: Path) -> None:
    changed = regenerated.parent / "signed.suite.yaml"
    changed.write_text(
        regenerated.read_text().replace(
            "surrogate: {n_estimators: 20,", "surrogate: {target: signed, n_estimators: 20,"
        )
    )
    run = _run(pytester, changed)
    assert run.ret == 1
    run.stdout.fnmatch_lines([
        "*baseline*baseline.json ranked SHAP features with surrogate settings*'target': 'absolute'*"
        "the suite now uses*'target': 'signed'*write one with --harness-regen-baselines*",
    ])


def test_baseline_without_shap_settings_is_refused(pytester: pytest.Pytester, regenerated: Path) -> None:
    old = regenerated.parent / "old"
    old.mkdir()
    doc = json.loads((regenerated.parent / "baseline.json").read_text())
    del doc["surrogate"], doc["descriptor"]  # as written before the settings were recorded
    (old / "baseline.json").write_text(json.dumps(doc))
    for name in ("a.model", "b.model", "structures.extxyz"):
        (old / name).write_bytes((regenerated.parent / name).read_bytes())
    suite = old / "old.suite.yaml"
    suite.write_text(regenerated.read_text())
    run = _run(pytester, suite)
    assert run.ret == 1
    run.stdout.fnmatch_lines([
        "*baseline.json does not record the surrogate settings of its SHAP ranking, so shap_top_shared "
        "cannot be compared; write one with --harness-regen-baselines*",
    ])
