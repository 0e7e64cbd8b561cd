"""Inconclusive is not a failure of the model (issue 14.4): the `if_unexplained` policy of SHAP-level checks.

A planted case with a known answer: reference energies are the model's own
minus pure Gaussian noise, so the model's error is noise and no surrogate can
explain it (cross-validated and held-out R^2 far below the bound). Each policy
is run through the real pytest plugin, with the results JSON, JUnit XML, the
HTML report, `mlff-harness compare` and `history`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from harness.gate.baseline import write_baseline
from harness.gate.outcome import CheckOutcome, Measurement
from harness.gate.session import RunOptions, SuiteRun
from harness.reports.report import summary_table
from harness.reports.results_schema import validate_results
from harness.suite.bounds import Bound
from harness.suite.check_kinds import IF_UNEXPLAINED_DEFAULT, ShapClassesCheck
from harness.suite.loader import load_suite

from tiny_cases import cells, run_cli, write_models, write_structures

SUITE = """\
suite: unexplained
reference: {{structures: noise.extxyz}}
models:
  candidate: {{checkpoint: plain.model, sha256: {sha}}}
  compare_with:
    twin: {{checkpoint: plain.model, sha256: {sha}}}
descriptor: {{soap: {{species: [Cr, Sb, Te], r_cut_A: 4.0, n_max: 2, l_max: 2}}}}
surrogate: {{n_estimators: 30, max_depth: 2, learning_rate: 0.1, cv_folds: 3, target: signed}}
checks:
  - accuracy: {{energy_rmse_meV_per_atom: {{max: 1.0e+6}}}}
  - shap_classes:
      name: policy-fail
      if_unexplained: fail
      surrogate_cv_r2: {{min: 0.5}}
      top_n: 5
      involving: Cr
      involving_share: {{min: 0.0}}
  - shap_classes:
      name: policy-pass
      if_unexplained: pass
      surrogate_cv_r2: {{min: 0.5}}
      top_n: 5
      involving: Cr
      involving_share: {{min: 0.0}}
  - shap_classes:
      name: policy-default
      surrogate_cv_r2: {{min: 0.5}}
      top_n: 5
      involving: Cr
      involving_share: {{min: 0.0}}
  - overlap: {{with: twin, top_n: 5, surrogate_cv_r2: {{min: 0.5}}, shared: {{min: 0}}, if_unexplained: pass}}
  - regression:
      baseline: baseline.json
      top_n: 5
      if_unexplained: pass
      surrogate_cv_r2: {{min: 0.5}}
      gradcam_rank_correlation: {{min: 0.99}}
      shap_top_shared: {{min: 0}}
  - surrogate_faithfulness:
      top_n: 2
      draws: 3
      bootstrap: {{n_resamples: 50}}
      heldout_r2: {{min: 0.5}}
      top_r2_drop: {{min: -1.0e+6}}
      if_unexplained: skip
"""


@pytest.fixture(scope="module")
def noise_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unexplained")
    shas = write_models(root)
    noise = np.random.default_rng(7).normal(0.0, 0.05, 30)  # eV per structure: the whole error, pure noise
    write_structures(root / "noise.extxyz", cells(30, seed=8), root / "plain.model",
                     energy_error_eV=lambda i, atoms: float(noise[i]))
    suite = root / "unexplained.suite.yaml"
    suite.write_text(SUITE.format(sha=shas["plain"]))
    write_baseline(root / "baseline.json", SuiteRun(load_suite(suite), RunOptions(progress=False)), "candidate")
    return suite


@pytest.fixture(scope="module")
def plugin(noise_suite: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("unexplained-run")
    root = noise_suite.parent
    paths = {"results": out / "results.json", "junit": out / "junit.xml", "html": out / "report.html"}
    proc = run_cli("pytest", str(noise_suite), "-p", "no:cacheprovider", "-q", "-rs", f"--rootdir={root}",
                   f"--harness-results={paths['results']}", f"--junitxml={paths['junit']}",
                   f"--harness-html={paths['html']}", cwd=root)
    return {"output": proc.stdout + proc.stderr, "returncode": proc.returncode, **paths}


def _outcome(doc: dict, check: str) -> dict:
    return next(o for o in doc["outcomes"] if o["check"] == check)


def test_the_default_is_skip_and_documented() -> None:
    assert IF_UNEXPLAINED_DEFAULT == "skip"
    described = ShapClassesCheck.model_fields["if_unexplained"].description or ""
    assert "0.79" in described and "0.975" in described  # the measurements the default was chosen from


def test_each_policy_through_the_plugin(plugin: dict[str, object]) -> None:
    output = str(plugin["output"])
    assert plugin["returncode"] == 1, output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert "1 failed, 4 passed, 2 skipped" in output
    assert "policy-fail[candidate]" in output and "the surrogate does not explain the model's error" in output
    assert "SKIPPED" in output and "inconclusive (if_unexplained: skip)" in output
    assert "INCONCLUSIVE (if_unexplained: pass)" in output  # the summary table


def test_results_json_has_the_third_state(plugin: dict[str, object]) -> None:
    doc = validate_results(json.loads(Path(str(plugin["results"])).read_text()))
    statuses = {o["check"]: o["status"] for o in doc["outcomes"]}
    assert statuses == {
        "accuracy": "pass",
        "policy-fail": "fail",
        "policy-pass": "inconclusive",
        "policy-default": "inconclusive",
        "overlap": "inconclusive",
        "regression": "inconclusive",
        "surrogate_faithfulness": "inconclusive",
    }
    assert doc["passed"] is False  # only because of policy-fail
    fail, passed = _outcome(doc, "policy-fail"), _outcome(doc, "policy-pass")
    r2 = fail["measurements"][0]
    assert r2["metric"] == "surrogate_cv_r2" and r2["gate"] is True and r2["value"] < 0.5  # noise: not explained
    assert fail["passed"] is False and "does not explain" in fail["reason"]
    assert passed["passed"] is True and passed["reason"] is None
    assert passed["if_unexplained"] == "pass" and "does not explain" in passed["unexplained"]
    assert _outcome(doc, "policy-default")["if_unexplained"] == "skip"
    held_out = _outcome(doc, "surrogate_faithfulness")["measurements"][0]
    assert held_out["metric"] == "heldout_r2" and held_out["value"] < 0.5
    # the regression's Grad-CAM part is still judged (the same model: 1.0); only its SHAP part is inconclusive
    regression = {m["metric"]: m for m in _outcome(doc, "regression")["measurements"]}
    assert regression["gradcam_rank_correlation"]["passed"] and regression["gradcam_rank_correlation"]["evaluated"]
    assert not regression["shap_top_shared"]["evaluated"]


def test_junit_marks_inconclusive_and_skips(plugin: dict[str, object]) -> None:
    cases = {c.get("name"): c for c in ET.parse(str(plugin["junit"])).getroot().iter("testcase")}
    props = {name: {p.get("name"): p.get("value") for p in case.iter("property")} for name, case in cases.items()}
    assert props["policy-pass[candidate]"]["outcome"] == "inconclusive"
    assert "does not explain" in props["policy-pass[candidate]"]["inconclusive"]
    assert cases["policy-fail[candidate]"].find("failure") is not None
    skipped = cases["policy-default[candidate]"].find("skipped")
    assert skipped is not None and "inconclusive (if_unexplained: skip)" in skipped.get("message", "")
    assert props["policy-default[candidate]"]["outcome"] == "inconclusive"


def test_html_report_shows_inconclusive(plugin: dict[str, object]) -> None:
    html = Path(str(plugin["html"])).read_text()
    assert "5 inconclusive (the surrogate does not explain the error)" in html
    assert html.count('<span class="inconclusive">INCONCLUSIVE</span> (if_unexplained:') == 5


def test_compare_and_history_read_the_new_status(plugin: dict[str, object], tmp_path: Path) -> None:
    results = Path(str(plugin["results"]))
    old = json.loads(results.read_text())
    for outcome in old["outcomes"]:  # a document written before `status` existed reads from `passed`
        for key in ("status", "unexplained", "if_unexplained"):
            outcome.pop(key, None)
    (tmp_path / "history").mkdir()
    old["checkpoint"], new = {"step": 1}, json.loads(results.read_text())
    new["checkpoint"] = {"step": 2}
    before, after = tmp_path / "history" / "a.json", tmp_path / "history" / "b.json"
    before.write_text(json.dumps(old))
    after.write_text(json.dumps(new))
    compared = run_cli("harness.cli.main", "compare", str(before), str(after), cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr  # nothing flipped to fail (policy-fail failed in both)
    assert "Traceback" not in compared.stdout + compared.stderr
    row = next(line for line in compared.stdout.splitlines() if "policy-pass" in line and "surrogate_cv_r2" in line)
    assert "pass -> inconclusive" in row and "now inconclusive" in row
    history = run_cli("harness.cli.main", "history", str(tmp_path / "history"), cwd=tmp_path)
    assert history.returncode in (0, 1) and "Traceback" not in history.stdout + history.stderr
    line = next(line for line in history.stdout.splitlines() if line.startswith("check 'policy-pass'"))
    assert "passed at every checkpoint (inconclusive at step 2)" in line  # step 1 predates `status`
    row = next(line for line in history.stdout.splitlines() if "policy-pass" in line and "surrogate_cv_r2" in line)
    # step 1 (no `status`) is read as before: the R^2 below its bound is a failed value; step 2 says inconclusive
    assert row.index(" FAIL") < row.index(" inconclusive") and row.rstrip().endswith("step 1")


def _m(metric: str, passed: bool, *, evaluated: bool = True, gate: bool = False) -> Measurement:
    return Measurement(metric, 0.1, Bound(min=0.5), passed, evaluated, gate=gate)


@pytest.mark.parametrize(
    ("policy", "others_pass", "status"),
    [("fail", True, "fail"), ("pass", True, "inconclusive"), ("skip", True, "inconclusive"), ("pass", False, "fail")],
)
def test_status_logic(policy: str, others_pass: bool, status: str) -> None:
    """An unexplained surrogate leaves only the SHAP part to the policy: a failing Grad-CAM part still fails."""
    outcome = CheckOutcome(
        "regression", "regression", "candidate", 3,
        (_m("surrogate_cv_r2", False, gate=True), _m("shap_top_shared", False, evaluated=False),
         _m("gradcam_rank_correlation", others_pass)),
        unexplained="surrogate cross-validated R^2 = 0.100 is outside >= 0.5", if_unexplained=policy,
    )
    assert outcome.status == status
    assert outcome.passed is (status != "fail")
    table = summary_table([outcome], {})
    if status == "inconclusive":
        assert f"INCONCLUSIVE (if_unexplained: {policy})" in table and outcome.to_json()["reason"] is None
    elif others_pass:  # failed by its policy: the unexplained surrogate is the reason
        assert "FAIL: surrogate cross-validated R^2 = 0.100" in table
        assert outcome.failure_reason == outcome.unexplained
    else:  # failed on its Grad-CAM part: the reason is not the surrogate's, which stays inconclusive
        assert outcome.failure_reason is None
        assert "FAIL on its other values; SHAP part INCONCLUSIVE (if_unexplained: pass)" in table
