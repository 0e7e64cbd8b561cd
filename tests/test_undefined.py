"""Undefined is a value, not a crash (issue 14.3): every check kind, the reports and `measure`.

Real tiny MACE checkpoints and real extxyz files: a suite whose data lack the
element its checks name, a model whose Grad-CAM is exactly zero (its last
readout zeroed), a model whose error is the same on every structure, and a
reference set smaller than the surrogate's folds need. Every undefined value
must fail its check with a reason, be ``null`` with that reason in the results
JSON and ``n/a`` in the tables, and nothing may end in a traceback.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path

import numpy as np
import pytest

from harness.explain.metrics import why_undefined
from harness.gate.baseline import write_baseline
from harness.gate.checks import run_check
from harness.gate.outcome import CheckOutcome
from harness.gate.session import RunOptions, SuiteRun
from harness.reports.html_report import render_html
from harness.reports.measure import measure_models
from harness.reports.report import results_document, summary_table, write_json
from harness.reports.results_schema import validate_results
from harness.suite.loader import load_suite
from harness.suite.schema import CHECK_KINDS

from tiny_cases import cells, run_cli, write_models, write_structures

SUITE = """\
suite: undefined-{name}
reference: {{structures: {structures}{reference_extra}}}
models:
  candidate: {{checkpoint: {candidate}.model, sha256: {sha_candidate}}}
  compare_with:
    other: {{checkpoint: plain.model, sha256: {sha_plain}}}
descriptor: {{soap: {{species: [Cr, Sb, Te], r_cut_A: 4.0, n_max: 2, l_max: 2}}}}
surrogate: {{n_estimators: 20, max_depth: 2, learning_rate: 0.1, cv_folds: 3, target: signed}}
settings: {{batch_size: 64}}
checks:
  - accuracy:
      force_rmse_meV_per_A: {{max: 1.0e+6}}
      per_element: {{Cr: {{force_rmse_meV_per_A: {{max: 1.0e+6}}}}}}
      group_by: config_type
      per_group: {{cr9: {{energy_rmse_meV_per_atom: {{max: 1.0e+6}}}}}}
  - gradcam_locus:
      element: Cr
      mean_ratio_to_host: {{min: 0.0}}
      top_k_share: {{min: 0.0}}
      element_mean_score: {{min: 0.0}}
      relu_zero_fraction: {{max: 1.0}}
  - shap_classes:
      surrogate_cv_r2: {{min: -1.0e+6}}
      top_n: 5
      involving: Cr
      involving_share: {{min: 0.0}}
      angular_l: [0]
      angular_l_share: {{min: 0.0}}
  - overlap:
      with: other
      top_n: 5
      surrogate_cv_r2: {{min: -1.0e+6}}
      shared: {{min: 0}}
  - regression:
      baseline: baseline.json
      top_n: 5
      surrogate_cv_r2: {{min: -1.0e+6}}
      gradcam_rank_correlation: {{min: -1.0}}
      shap_top_shared: {{min: 0}}
  - attribution_faithfulness:
      k: 1
      k_max: 2
      draws: 2
      max_structures: 4
      bootstrap: {{n_resamples: 50}}
      top_to_random_dE_ratio: {{min: 0.0}}
  - randomisation_sanity:
      max_structures: 4
      cascade: false
      bootstrap: {{n_resamples: 50}}
      max_rank_correlation: {{max: 1.0}}
  - surrogate_faithfulness:
      top_n: 2
      draws: 3
      bootstrap: {{n_resamples: 50}}
      heldout_r2: {{min: -1.0e+6}}
      top_r2_drop: {{min: -1.0e+6}}
  - atom_error_classes:
      max_atoms: 60
      n_estimators: 20
      cv_folds: 3
      pair: [Cr, Sb]
      surrogate_cv_r2: {{min: -1.0e+6}}
      pair_class_share: {{min: 0.0}}
      pair_class_rank: {{min: 1}}
  - pair_force_bias:
      pair: [Cr, Sb]
      bias_meV_per_A: {{min: -1.0e+6}}
"""


def _suite(root: Path, name: str, shas: dict[str, str], *, candidate: str, structures: str, extra: str = "") -> Path:
    path = root / f"{name}.suite.yaml"
    path.write_text(SUITE.format(
        name=name, structures=structures, reference_extra=extra, candidate=candidate,
        sha_candidate=shas[candidate], sha_plain=shas["plain"],
    ))
    return path


def _error(i: int, atoms) -> float:  # a learnable, varying energy error (eV): grows with the Sb count
    return 0.02 * atoms.get_chemical_symbols().count("Sb") + 0.001 * i


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four suites in one folder: no Cr in the data, an all-zero Grad-CAM, a constant error, too few structures."""
    root = tmp_path_factory.mktemp("undefined")
    shas = write_models(root)
    no_cr = cells(12, seed=3, with_cr=False)
    with_cr = cells(12, seed=4)
    for atoms in no_cr + with_cr:
        atoms.info["config_type"] = "cr0" if "Cr" not in atoms.get_chemical_symbols() else "cr1"
    write_structures(root / "no_cr.extxyz", no_cr, root / "plain.model", energy_error_eV=_error)
    write_structures(root / "with_cr.extxyz", with_cr, root / "dark.model", energy_error_eV=_error)
    constant = cells(12, seed=5)
    for atoms in constant:
        atoms.info["config_type"] = "cr1"
    # model - reference = 0.01 eV per atom on every structure: zero variance of the surrogate's target
    write_structures(root / "constant.extxyz", constant, root / "plain.model",
                     energy_error_eV=lambda i, atoms: 0.01 * len(atoms))
    suites = {
        "no_cr": _suite(root, "no_cr", shas, candidate="plain", structures="no_cr.extxyz"),
        "dark": _suite(root, "dark", shas, candidate="dark", structures="with_cr.extxyz"),
        "constant": _suite(root, "constant", shas, candidate="plain", structures="constant.extxyz"),
        "few": _suite(root, "few", shas, candidate="plain", structures="with_cr.extxyz",
                      extra=", max_structures: 4"),
    }
    for name in ("no_cr", "dark"):  # the regression checks' baseline: the candidate itself, on the same data
        write_baseline(root / "baseline.json" if name == "no_cr" else root / "baseline_dark.json",
                       SuiteRun(load_suite(suites[name]), RunOptions(progress=False)), "candidate")
    text = suites["dark"].read_text().replace("baseline: baseline.json", "baseline: baseline_dark.json")
    suites["dark"].write_text(text)
    for name in ("constant", "few"):  # regression on these is the no-baseline case: drop it
        text = suites[name].read_text()
        start = text.index("  - regression:")
        end = text.index("  - attribution_faithfulness:")
        suites[name].write_text(text[:start] + text[end:])
    return suites


def _outcomes(suite: Path) -> dict[str, CheckOutcome]:
    loaded = load_suite(suite)
    run = SuiteRun(loaded, RunOptions(progress=False))
    return {
        check.kind: run_check(check, "candidate", run, line=loaded.check_line(i))  # type: ignore[attr-defined]
        for i, check in enumerate(loaded.suite.checks)
    }


def _undefined(outcome: CheckOutcome, metric: str) -> str:
    m = next(m for m in outcome.measurements if m.metric == metric)
    assert m.undefined and not m.passed and math.isnan(m.value), (metric, m)
    assert m.to_json()["value"] is None and m.to_json()["undefined_reason"] == m.undefined_reason
    return str(m.undefined_reason)


def _defined(outcome: CheckOutcome, metric: str) -> float:
    m = next(m for m in outcome.measurements if m.metric == metric)
    assert not m.undefined and math.isfinite(m.value), (metric, m)
    return m.value


def _assert_reported(outcomes: dict[str, CheckOutcome], tmp_path: Path) -> dict:
    """The table says n/a and the reason; the results document is valid, has no NaN and writes."""
    table = summary_table(list(outcomes.values()), {})
    doc = results_document([], list(outcomes.values()))
    validate_results(doc)
    write_json(tmp_path / "results.json", doc)  # refuses any NaN
    html = render_html(doc)
    for outcome in doc["outcomes"]:
        for m in outcome["measurements"]:
            assert (m["value"] is None) == ("undefined_reason" in m), m
            if "undefined_reason" in m:
                assert f"FAIL: undefined: {m['undefined_reason']}" in table
                assert f'<span class="fail">FAIL</span>: undefined: {escape(m["undefined_reason"])}' in html
                assert outcome["status"] == "fail" and outcome["passed"] is False
    return doc


def test_every_check_kind_is_in_the_suite(cases: dict[str, Path]) -> None:
    missing = set(CHECK_KINDS) - {check.kind for check in load_suite(cases["no_cr"]).suite.checks}
    assert not missing, f"add check kind(s) {sorted(missing)} to SUITE here and assert what they leave undefined"


def test_data_without_the_named_element(cases: dict[str, Path], tmp_path: Path) -> None:
    outcomes = _outcomes(cases["no_cr"])
    no_cr = "no Cr atom in the reference structures (elements: Sb, Te)"
    assert _undefined(outcomes["accuracy"], "per_element.Cr.force_rmse_meV_per_A") == no_cr
    assert "no reference structure has config_type='cr9': the group is empty" in _undefined(
        outcomes["accuracy"], "per_group.cr9.energy_rmse_meV_per_atom"
    )
    for metric in ("mean_ratio_to_host", "top_k_share", "element_mean_score"):
        assert _undefined(outcomes["gradcam_locus"], metric) == no_cr
    assert 0.0 <= _defined(outcomes["gradcam_locus"], "relu_zero_fraction") <= 1.0
    assert _undefined(outcomes["shap_classes"], "involving_share") == "no Cr atom in the reference structures " \
        "(elements: Sb, Te)"
    assert 0.0 <= _defined(outcomes["shap_classes"], "angular_l_share") <= 1.0  # not about Cr: still measured
    for metric in ("pair_class_share", "pair_class_rank"):  # per atom: the pair [Cr, Sb] has no Cr
        assert _undefined(outcomes["atom_error_classes"], metric) == no_cr
    assert _undefined(outcomes["pair_force_bias"], "bias_meV_per_A") == no_cr
    for kind in ("accuracy", "gradcam_locus", "shap_classes", "atom_error_classes", "pair_force_bias"):
        assert outcomes[kind].status == "fail"
    # the kinds that name no element measure as usual
    assert _defined(outcomes["regression"], "gradcam_rank_correlation") == pytest.approx(1.0)
    assert _defined(outcomes["regression"], "shap_top_shared") == 5
    for kind in ("overlap", "regression", "attribution_faithfulness", "randomisation_sanity", "surrogate_faithfulness"):
        assert outcomes[kind].status == "pass", outcomes[kind]
    table = summary_table(list(outcomes.values()), {})
    assert "n/a" in table and no_cr in table
    _assert_reported(outcomes, tmp_path)


def test_all_zero_gradcam(cases: dict[str, Path], tmp_path: Path) -> None:
    run = SuiteRun(load_suite(cases["dark"]), RunOptions(progress=False))
    assert not np.any(run.outputs("candidate").gradcam_raw)  # the plant: exactly zero
    assert np.std(run.outputs("candidate").energies_eV) > 0  # the energy still depends on the first layer
    outcomes = _outcomes(cases["dark"])
    assert "both 0 (Grad-CAM all zero?)" in _undefined(outcomes["gradcam_locus"], "mean_ratio_to_host")
    assert "constant within each of the 12 structure(s)" in _undefined(outcomes["gradcam_locus"], "top_k_share")
    assert _defined(outcomes["gradcam_locus"], "relu_zero_fraction") == 1.0
    assert "no rank correlation" in _undefined(outcomes["regression"], "gradcam_rank_correlation")
    assert "no top atoms to displace" in _undefined(outcomes["attribution_faithfulness"], "top_to_random_dE_ratio")
    assert "no rank correlation with a randomised map" in _undefined(
        outcomes["randomisation_sanity"], "max_rank_correlation"
    )
    for kind in ("gradcam_locus", "regression", "attribution_faithfulness", "randomisation_sanity"):
        assert outcomes[kind].status == "fail"
    for kind in ("shap_classes", "overlap", "surrogate_faithfulness"):  # the error still varies
        assert outcomes[kind].status == "pass", outcomes[kind]
    assert _defined(outcomes["accuracy"], "per_element.Cr.force_rmse_meV_per_A") > 0  # Cr is there this time
    _assert_reported(outcomes, tmp_path)


def test_constant_error_leaves_the_surrogate_nothing_to_explain(cases: dict[str, Path], tmp_path: Path) -> None:
    outcomes = _outcomes(cases["constant"])
    for kind, metric in (("shap_classes", "surrogate_cv_r2"), ("shap_classes", "involving_share"),
                         ("overlap", "shared"), ("surrogate_faithfulness", "heldout_r2")):
        reason = _undefined(outcomes[kind], metric)
        assert "same energy error on every structure" in reason and "nothing to explain" in reason
        assert outcomes[kind].status == "fail"
    _assert_reported(outcomes, tmp_path)


def test_fewer_structures_than_the_surrogate_needs(cases: dict[str, Path], tmp_path: Path) -> None:
    outcomes = _outcomes(cases["few"])
    assert _undefined(outcomes["shap_classes"], "surrogate_cv_r2") == (
        "the surrogate needs at least 6 structures for 3-fold cross-validation; the reference set has 4"
    )
    assert "leave 1 held out and 3 for the fit" in _undefined(outcomes["surrogate_faithfulness"], "heldout_r2")
    assert outcomes["shap_classes"].status == outcomes["surrogate_faithfulness"].status == "fail"
    _assert_reported(outcomes, tmp_path)


def test_write_json_refuses_a_leaked_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"non-finite number at \$\.models\.a\.ratio"):
        write_json(tmp_path / "x.json", {"models": {"a": {"ratio": float("nan")}}})
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("name", ["no_cr", "dark"])
def test_measure_reports_null_with_reasons(cases: dict[str, Path], name: str, tmp_path: Path) -> None:
    run = SuiteRun(load_suite(cases[name]), RunOptions(progress=False))
    doc = measure_models(run, top_n=5)
    write_json(tmp_path / "m.json", doc)  # no NaN reached it
    assert doc["focus_elements"] == ["Cr"]  # from the gradcam_locus and shap_classes checks
    gradcam = doc["models"]["candidate"]["gradcam"]
    assert gradcam["focus"]["Cr"]["mean_ratio_to_host"] is None
    reason = doc["undefined"]["$.models.candidate.gradcam.focus.Cr.mean_ratio_to_host"]
    assert reason == ("no Cr atom in the structures (elements: Sb, Te)" if name == "no_cr"
                      else "the mean score of Cr and of the host atoms are both 0 (Grad-CAM all zero?)")
    assert why_undefined(0.5) is None and all(isinstance(v, str) and v for v in doc["undefined"].values())


def test_measure_every_element_or_the_given_ones(cases: dict[str, Path]) -> None:
    run = SuiteRun(load_suite(cases["dark"]), RunOptions(progress=False))
    doc = measure_models(run, top_n=5, elements=["Sb", "Te"])
    assert doc["focus_elements"] == ["Sb", "Te"]
    other = doc["models"]["other"]
    assert set(other["gradcam"]["focus"]) == set(other["shap"]["focus"]) == {"Sb", "Te"}
    assert other["gradcam"]["focus_element"] == "Sb"
    assert other["gradcam"]["mean_ratio_to_host"] == other["gradcam"]["focus"]["Sb"]["mean_ratio_to_host"] > 0


def test_plugin_and_measure_cli_end_to_end(
    cases: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a user runs them: pytest with results and JUnit, then `mlff-harness history`, `compare` and
    `measure --out` (on the pytest run's cache, as a user's second command would be)."""
    from harness.cli.main import main

    root, cache = cases["no_cr"].parent, tmp_path / "cache"
    results, junit = tmp_path / "results.json", tmp_path / "junit.xml"
    proc = run_cli("pytest", str(cases["no_cr"]), "-p", "no:cacheprovider", "-q", f"--rootdir={root}",
                   f"--harness-results={results}", f"--junitxml={junit}", f"--harness-cache={cache}", cwd=root)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert "could not run" not in output
    assert "5 failed, 5 passed" in output
    assert "FAIL (undefined: no Cr atom in the reference structures (elements: Sb, Te))" in output
    doc = validate_results(json.loads(results.read_text()))
    undefined = [m for o in doc["outcomes"] for m in o["measurements"] if m["value"] is None]
    assert undefined and all(m["undefined_reason"] for m in undefined)
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert props["per_element.Cr.force_rmse_meV_per_A"] == "n/a"
    assert props["per_element.Cr.force_rmse_meV_per_A:undefined"].startswith("no Cr atom")
    history = tmp_path / "history"
    history.mkdir()
    for step in (1, 2):
        (history / f"{step}.json").write_text(json.dumps({**doc, "checkpoint": {"step": step}}))
    for command in (["history", str(history)], ["compare", str(history / "1.json"), str(history / "2.json")]):
        assert main(command) == 0
        shown = capsys.readouterr()
        assert "n/a" in shown.out and "Traceback" not in shown.out + shown.err
    out = tmp_path / "measure.json"
    assert main(["measure", str(cases["no_cr"]), "--out", str(out), "--cache", str(cache), "--top-n", "5"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    written = json.loads(out.read_text())
    assert written["models"]["candidate"]["gradcam"]["focus"]["Cr"]["top_k_share"] is None
    assert written["undefined"]["$.models.candidate.gradcam.focus.Cr.top_k_share"] == "no structure contains Cr"
    assert written["undefined"]["$.models.candidate.shap.focus.Cr.involving_share"] == (
        "no Cr atom in the reference structures (elements: Sb, Te)"
    )
