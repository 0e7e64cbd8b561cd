"""The shipped Cr:Sb2Te3 release gate on the shipped checkpoints (real models, real data).

The gate must pass the release candidate and fail the models built to be wrong.
Each gated run evaluates one MACE checkpoint on the 300 test structures on CPU
(about 1-2 minutes each); the runs share one cache folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.reference import sha256_file

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
GATE = REPO / "suites" / "cr_sb2te3"
CHECKPOINTS = REPO / "reference_data" / "checkpoints"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate-cache")


def _gate(pytester: pytest.Pytester, cache: Path, *extra: str) -> tuple[pytest.RunResult, dict]:
    results = cache / "results.json"
    # a subprocess per gate run: each run loads a full MACE model, as in CI
    run = pytester.runpytest_subprocess(
        str(GATE), "-p", "no:cacheprovider", f"--harness-cache={cache}", f"--harness-results={results}", *extra
    )
    return run, json.loads(results.read_text())


def _failed_checks(doc: dict) -> set[str]:
    return {o["check"] for o in doc["outcomes"] if not o["passed"]}


def _measurement(doc: dict, check: str, metric: str) -> dict:
    outcome = next(o for o in doc["outcomes"] if o["check"] == check)
    return next(m for m in outcome["measurements"] if m["metric"] == metric)


def _as_candidate(name: str) -> tuple[str, str]:
    path = CHECKPOINTS / name
    return f"--candidate={path}", f"--candidate-sha256={sha256_file(path)}"


def test_gate_passes_the_release_candidate(pytester: pytest.Pytester, cache: Path) -> None:
    run, doc = _gate(pytester, cache)
    run.assert_outcomes(passed=3)
    assert _measurement(doc, "dopant-locus", "mean_ratio_to_host")["value"] == pytest.approx(0.963, abs=0.001)
    run.stdout.fnmatch_lines(["*mlff-harness summary*", "*candidate*attribution-drift*gradcam_rank_correlation*PASS*"])
    assert doc["passed"] is True
    accuracy = doc["suites"][0]["accuracy"]["candidate"]
    assert accuracy["energy_rmse_meV_per_atom"] == pytest.approx(2.31, abs=0.01)  # CALIBRATION.md


def test_gate_fails_the_layer_randomised_copy(pytester: pytest.Pytester, cache: Path) -> None:
    run, doc = _gate(pytester, cache, *_as_candidate("randomised_last_layer.model.gz"))
    assert run.ret == 1
    # meant to be caught by the attribution regression check; accuracy and the
    # dopant locus (Cr/host 0.000: it no longer looks at Cr) catch it too
    assert _failed_checks(doc) == {"accuracy", "dopant-locus", "attribution-drift"}
    assert _measurement(doc, "attribution-drift", "gradcam_rank_correlation")["value"] < 0.5


def test_gate_fails_the_dopant_blind_model(pytester: pytest.Pytester, cache: Path) -> None:
    run, doc = _gate(pytester, cache, *_as_candidate("dopant_blind.model.gz"))
    assert run.ret == 1
    # meant to be caught by the dopant locus: its Cr parameters never saw the doped
    # slab, and Grad-CAM shows it ignores Cr (CALIBRATION.md: Cr/host 0.006)
    locus = _measurement(doc, "dopant-locus", "mean_ratio_to_host")
    assert locus["value"] < 0.05 and not locus["passed"]
    cr_forces = _measurement(doc, "accuracy", "per_element.Cr.force_rmse_meV_per_A")
    assert cr_forces["value"] > 300 and not cr_forces["passed"]
    assert _failed_checks(doc) == {"accuracy", "dopant-locus", "attribution-drift"}


@pytest.mark.xfail(strict=True, reason="known gap (CALIBRATION.md): the planted Cr-Cr term is too weak to move "
                   "Grad-CAM or RMSE, and the SHAP level is not gated (surrogate R^2 < 0.7 on 300 structures)")
def test_gate_fails_the_planted_signal_model(pytester: pytest.Pytester, cache: Path) -> None:
    run, doc = _gate(pytester, cache, *_as_candidate("planted_crcr.model.gz"))
    assert run.ret == 1
