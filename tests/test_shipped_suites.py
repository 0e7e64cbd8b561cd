"""The shipped Cr:Sb2Te3 suites on the shipped checkpoints (real models, real data).

The release gate must pass the release candidate and fail the models built to be
wrong, each on the check meant to catch it; the main job (`pytest
suites/cr_sb2te3`: the gate and the sanity suite) passes the candidate. Each run
evaluates one MACE checkpoint on the 300 test structures on CPU and fits its
surrogate (1-3 minutes), and is marked ``slow`` (it still runs in CI). Runs on one
pytest-xdist worker share a cache folder (the parsed reference and its SOAP vectors
are the same for every model); the main job is one xdist unit (its two tests read one
run) and each must-fail run is a class of its own, so that ``--dist loadscope`` can
give them to different workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.files import sha256_file
from harness.reports.html_report import RUN_SECTIONS, SUITE_SECTIONS
from harness.reports.results_schema import validate_results

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "suites" / "cr_sb2te3"
GATE = SUITES / "release_gate.suite.yaml"
CHECKPOINTS = REPO / "reference_data" / "checkpoints"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate-cache")


def _gate(pytester: pytest.Pytester, cache: Path, *extra: str, path: Path = GATE) -> tuple[pytest.RunResult, dict]:
    results = cache / "results.json"
    # a subprocess per gate run: each run loads a full MACE model, as in CI
    run = pytester.runpytest_subprocess(
        str(path), "-p", "no:cacheprovider", f"--harness-cache={cache}", f"--harness-results={results}", *extra
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


def _outcome(doc: dict, check: str) -> dict:
    return next(o for o in doc["outcomes"] if o["check"] == check)


@dataclass(frozen=True)
class MainJob:
    """What one `pytest suites/cr_sb2te3` run printed and wrote."""

    returncode: int
    stdout: pytest.LineMatcher
    doc: dict
    html: Path


@pytest.fixture(scope="module")
def main_job(cache: Path) -> MainJob:
    """`pytest suites/cr_sb2te3` with the HTML report and the stage profile, run once for every test that reads it
    (a subprocess, as in CI)."""
    html, results = cache / "report.html", cache / "main-job.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(SUITES), "-p", "no:cacheprovider", f"--harness-cache={cache}",
         f"--harness-results={results}", f"--harness-html={html}",
         f"--harness-profile-json={cache / 'main-job-profile.json'}"],
        capture_output=True, text=True, cwd=cache, timeout=3600,  # ~5 min on 2 idle cores
    )
    return MainJob(proc.returncode, pytest.LineMatcher(proc.stdout.splitlines()), json.loads(results.read_text()), html)


@pytest.mark.slow
def test_main_job_passes_the_release_candidate(main_job: MainJob) -> None:
    """`pytest suites/cr_sb2te3`: the release gate and the sanity suite on FT-MultiT, with the reports."""
    doc, html = main_job.doc, main_job.html
    assert main_job.returncode == 0
    from harness.suite.loader import load_suite

    checks = sum(len(load_suite(p).suite.checks) for p in sorted(SUITES.glob("*.suite.yaml")))  # one model each
    main_job.stdout.re_match_lines([rf"=+ {checks} passed.* in .*"])  # gate: 5 checks; sanity: 2
    assert doc["passed"] is True
    assert _measurement(doc, "dopant-locus", "mean_ratio_to_host")["value"] == pytest.approx(0.963, abs=0.001)
    accuracy = doc["suites"][0]["accuracy"]["candidate"]
    assert accuracy["energy_rmse_meV_per_atom"] == pytest.approx(2.31, abs=0.01)  # CALIBRATION.md
    # the "what" level is judged only because the surrogate fits (CALIBRATION.md: 0.720)
    assert _measurement(doc, "error-classes", "surrogate_cv_r2")["value"] == pytest.approx(0.720, abs=0.005)
    assert _measurement(doc, "error-classes", "angular_l_share")["value"] == pytest.approx(0.25)
    main_job.stdout.fnmatch_lines([
        "*mlff-harness summary*",
        "*candidate*attribution-drift*gradcam_rank_correlation*PASS*",
        # the sanity checks print value, bootstrap interval and threshold
        "*candidate*weights-matter*max_rank_correlation*[[]*,*[]]*<=*PASS*",
        "*candidate*shap-faithful*top_to_random_r2_drop_ratio*[[]*,*[]]*>=*PASS*",
    ])
    # the results document validates against its shipped JSON Schema, and the HTML
    # report of the real run has every section of both suites (rendering in a
    # browser: tests/test_html_report.py)
    validate_results(doc)
    text = html.read_text()
    for section in RUN_SECTIONS:
        assert f'<section id="{section}">' in text, section
    for index in range(len(doc["suites"])):
        for section in SUITE_SECTIONS:
            assert f'<section id="{section}-{index}">' in text, (section, index)


# How far a value of the main job may move from tests/data/main_job_before.json (the results before
# the speed work of issue 17). The speed changes compute the same numbers (same parse, same SOAP,
# same TreeSHAP): on the machine that wrote the file every value came out identical. Elsewhere,
# float64 sums in another order (BLAS, thread count) move deterministic values by ~1e-12 and can
# move a tree split of the surrogate, so surrogate-based values get a tolerance of their own.
_SURROGATE_BASED = {"error-classes", "shap-faithful"}
_TOLERANCE = {  # (relative, absolute)
    "deterministic": (1e-6, 1e-9),
    "surrogate_cv_r2": (0.0, 0.005),
    "angular_l_share": (0.0, 0.05),  # one of the top 20 features
    "heldout_r2": (0.0, 0.01),
    "top_to_random_r2_drop_ratio": (0.05, 0.0),
}
_BEFORE = Path(__file__).resolve().parent / "data" / "main_job_before.json"
# Checks whose method changed on purpose since the file was written (what changed, where it is measured).
_METHOD_CHANGED = {
    "weights-matter": "issue 16: a re-draw per structure instead of one shared draw (CALIBRATION.md, sanity)",
}


@pytest.mark.slow
def test_main_job_results_are_those_before_the_speed_work(main_job: MainJob) -> None:
    before = json.loads(_BEFORE.read_text())
    after = main_job.doc
    for key, value in before["accuracy"].items():
        assert after["suites"][0]["accuracy"]["candidate"][key] == pytest.approx(value, rel=1e-6), key
    compared = 0
    for old in before["outcomes"]:
        new = next((o for o in after["outcomes"] if (o["check"], o["model"]) == (old["check"], old["model"])), None)
        if new is None:  # a check renamed or removed since: nothing to compare
            continue
        if old["check"] in _METHOD_CHANGED:  # a deliberate change of the method, not of the speed
            continue
        assert new["passed"] == old["passed"], old["check"]
        measured = {m["metric"]: m for m in new["measurements"]}
        for metric, values in old["measurements"].items():
            if metric not in measured:
                continue
            kind = metric if old["check"] in _SURROGATE_BASED else "deterministic"
            rel, abs_ = _TOLERANCE.get(kind, _TOLERANCE["deterministic"])
            for field, expected in values.items():
                got = measured[metric].get(field)
                assert got == pytest.approx(expected, rel=rel, abs=abs_), (old["check"], metric, field)
                compared += 1
        if "top_features" in old and new["passed"]:
            top = [f["name"] for f in new["details"]["top_features"]]
            assert len(set(top) & set(old["top_features"])) >= len(old["top_features"]) - 2, old["check"]
    assert compared >= 12  # the comparison is not vacuous: at least the 12 gated values of today


@pytest.mark.slow
class TestLayerRandomisedCopy:
    def test_gate_fails_the_layer_randomised_copy(self, pytester: pytest.Pytester, cache: Path) -> None:
        run, doc = _gate(pytester, cache, *_as_candidate("randomised_last_layer.model.gz"))
        assert run.ret == 1
        # meant to be caught by the attribution regression check; accuracy and the
        # dopant locus (Cr/host 0.000: it no longer looks at Cr) catch it too
        assert _failed_checks(doc) == {"accuracy", "dopant-locus", "attribution-drift"}
        assert _measurement(doc, "attribution-drift", "gradcam_rank_correlation")["value"] < 0.5


@pytest.mark.slow
class TestDopantBlindModel:
    def test_gate_fails_the_dopant_blind_model(self, pytester: pytest.Pytester, cache: Path) -> None:
        run, doc = _gate(pytester, cache, *_as_candidate("dopant_blind.model.gz"))
        assert run.ret == 1
        # meant to be caught by the dopant locus: its Cr parameters never saw the doped
        # slab, and Grad-CAM shows it ignores Cr (CALIBRATION.md: Cr/host 0.006)
        locus = _measurement(doc, "dopant-locus", "mean_ratio_to_host")
        assert locus["value"] < 0.05 and not locus["passed"]
        cr_forces = _measurement(doc, "accuracy", "per_element.Cr.force_rmse_meV_per_A")
        assert cr_forces["value"] > 300 and not cr_forces["passed"]
        assert _failed_checks(doc) == {"accuracy", "dopant-locus", "error-classes", "attribution-drift"}


@pytest.mark.slow
class TestPlantedSignalModel:
    def test_gate_fails_the_planted_signal_model_on_the_what_level_only(
        self, pytester: pytest.Pytester, cache: Path
    ) -> None:
        """RMSE and Grad-CAM hide the planted Cr-Cr pair term; the SHAP level finds it."""
        run, doc = _gate(pytester, cache, *_as_candidate("planted_crcr.model.gz"))
        assert run.ret == 1
        assert _failed_checks(doc) == {"error-classes", "crcr-pair-force"}
        # the pair-force check names the pair, where and which way (CALIBRATION.md: -23.4 meV/A overall)
        assert _measurement(doc, "crcr-pair-force", "bias_meV_per_A")["value"] == pytest.approx(-23.4, abs=0.1)
        assert "Cr-Cr pairs at 2.50-3.00 A are too repulsive" in _outcome(doc, "crcr-pair-force")["reason"]
        assert _measurement(doc, "accuracy", "energy_rmse_meV_per_atom")["passed"]  # 2.83 <= 3
        assert _measurement(doc, "attribution-drift", "gradcam_rank_correlation")["value"] > 0.95  # same map
        # its error is a pair-like, isotropic one: 16 of its top 20 features were l=0 in the
        # environment of the calibration, 17 with scikit-learn 1.9.1 / numpy 2.4.6 (the code of
        # cfad03c gives 17 there too: CV R^2 0.7931 vs 0.7898; a package version moves the
        # 20th feature, not the verdict); candidate: 5
        l0_share = _measurement(doc, "error-classes", "angular_l_share")["value"]
        assert l0_share in (pytest.approx(0.80), pytest.approx(0.85))
        classes = _outcome(doc, "error-classes")["details"]
        assert classes["surrogate_cv_r2"] > 0.7
        # the known answer: its first-ranked feature is a Cr-Cr one (Cr-Cr_n34_l0; the second,
        # Cr-Sb_n33_l0, is only 7 % behind: inner-averaged SOAP blocks all track Cr content)
        assert classes["top_features"][0]["name"].startswith("Cr-Cr_")
