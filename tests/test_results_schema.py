"""The shipped JSON Schema of results documents, checked on a real plugin run and on broken documents."""

from __future__ import annotations

import copy
import gzip
import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from ase.io import read

from harness.cli.main import main
from harness.errors import DataError
from harness.files import sha256_file
from harness.reports.results_schema import load_results_file, results_json_schema, schema_errors, validate_results

from tiny_run import PluginRun, plugin_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PluginRun:
    done = plugin_run(tmp_path_factory.getbasetemp())
    assert done.returncode == 0, done.output
    return done


@pytest.fixture()
def doc(run: PluginRun) -> dict[str, Any]:
    return json.loads(run.results.read_text())


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(results_json_schema())


def test_cli_prints_the_results_schema(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["schema", "--results"]) == 0
    assert json.loads(capsys.readouterr().out) == results_json_schema()
    assert main(["schema", "--results", "-o", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["title"].startswith("mlff-harness results")


def test_real_plugin_results_validate(run: PluginRun, doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, results_json_schema(), cls=jsonschema.Draft202012Validator)
    assert load_results_file(run.results) == doc


def test_results_carry_what_the_issue_lists(run: PluginRun, doc: dict[str, Any]) -> None:
    folder = run.suite.parent
    assert doc["harness_version"] and doc["checkpoint"] == {"step": 7, "date": "2024-05-01T12:00", "label": "epoch 7"}
    (suite,) = doc["suites"]
    assert suite["suite"] == "tiny-report"
    prov = suite["provenance"]
    # checkpoint and data hashes are the real files' sha256
    assert prov["models"]["candidate"]["sha256"] == sha256_file(folder / "a.model")
    assert prov["models"]["other"]["sha256"] == sha256_file(folder / "b.model")
    assert prov["reference"]["sha256"] == sha256_file(folder / "structures.extxyz")
    assert prov["settings"]["dtype"] == "float64" and prov["settings"]["surrogate"]["n_estimators"] == 20
    # each check: value, threshold, outcome
    accuracy = next(o for o in doc["outcomes"] if o["check"] == "accuracy")
    (m,) = accuracy["measurements"]
    assert m["metric"] == "energy_rmse_meV_per_atom" and m["max"] == 50 and m["passed"] is True
    # RMSE of every evaluated model, the gated one equal to the check's value
    assert set(suite["accuracy"]) == {"candidate", "other"}
    assert suite["accuracy"]["candidate"]["energy_rmse_meV_per_atom"] == pytest.approx(m["value"])
    # per-element Grad-CAM of every model
    for name in ("candidate", "other"):
        assert set(suite["models"][name]["gradcam"]["per_element_mean"]) == {"Cr", "Sb", "Te"}
    # top-N SHAP features with values, descending; surrogate R^2 equal to the gated value
    for name in ("candidate", "other"):
        shap = suite["models"][name]["shap"]
        values = [t["mean_abs_shap"] for t in shap["top"]]
        assert len(values) == 20 and values == sorted(values, reverse=True) and values[0] > 0
        gated = next(o for o in doc["outcomes"] if o["check"] == "shap_classes" and o["model"] == name)
        assert shap["surrogate_cv_r2"] == pytest.approx(gated["measurements"][0]["value"])
        assert shap["top"] == gated["details"]["top_features"]
    assert set(suite["pairwise_shared"]) == {"candidate|other"}
    counts = suite["score_histogram"]["counts"]
    assert sum(counts["candidate"]) == prov["reference"]["n_atoms"] == 12 * 8


def test_scores_files_match_the_results(run: PluginRun, doc: dict[str, Any]) -> None:
    """extxyz per model with gradcam in atoms.arrays, consistent with the results' structure view."""
    view = doc["suites"][0]["structure_view"]
    for name in ("candidate", "other"):
        frames = read(run.scores / f"tiny-report.{name}.extxyz", index=":")
        assert len(frames) == 12
        assert all(len(a.arrays["gradcam"]) == len(a) == len(a.arrays["gradcam_raw"]) for a in frames)
        # ASE writes per-atom floats with 8 decimals: that is the precision of the file
        np.testing.assert_allclose(frames[view["index"]].arrays["gradcam"], view["scores"][name], rtol=0, atol=6e-9)
        assert np.ptp(view["scores"][name]) > 1e-6  # scores vary far beyond that precision
    chemiscope_file = run.scores / "tiny-report.chemiscope.json.gz"
    if find_spec("chemiscope") is None:
        assert not chemiscope_file.exists()
    else:
        data = json.loads(gzip.decompress(chemiscope_file.read_bytes()))
        assert {"gradcam[candidate]", "gradcam[other]"} <= set(data["properties"])
        assert len(data["properties"]["gradcam[candidate]"]["values"]) == 96


def _mutations() -> list[tuple[str, Any, str]]:
    def drop_format(d: dict) -> None:
        del d["format"]

    def string_value(d: dict) -> None:
        d["outcomes"][0]["measurements"][0]["value"] = "3.2"

    def unknown_key(d: dict) -> None:
        d["outcomes"][0]["measurements"][0]["thresold"] = 1.0

    def negative_step(d: dict) -> None:
        d["checkpoint"]["step"] = -1

    def bad_hash(d: dict) -> None:
        d["suites"][0]["provenance"]["models"]["candidate"]["sha256"] = "abc"

    def wrong_version(d: dict) -> None:
        d["format"] = "mlff-harness-results/2"

    def shap_without_top(d: dict) -> None:
        del d["suites"][0]["models"]["candidate"]["shap"]["top"]

    return [
        ("missing format", drop_format, "'format' is a required property"),
        ("string value", string_value, "$.outcomes[0].measurements[0].value"),
        ("unknown key", unknown_key, "thresold"),
        ("negative step", negative_step, "$.checkpoint.step"),
        ("bad hash", bad_hash, "$.suites[0].provenance.models.candidate.sha256"),
        ("wrong version", wrong_version, "$.format"),
        ("shap without top", shap_without_top, "$.suites[0].models.candidate.shap"),
    ]


@pytest.mark.parametrize(("case", "mutate", "expected"), _mutations(), ids=[m[0] for m in _mutations()])
def test_broken_documents_fail(doc: dict[str, Any], case: str, mutate: Any, expected: str) -> None:
    broken = copy.deepcopy(doc)
    mutate(broken)
    errors = schema_errors(broken)
    assert errors and any(expected in e for e in errors), errors
    with pytest.raises(DataError, match=r"broken\.json: not a valid mlff-harness-results/1 document"):
        validate_results(broken, source="broken.json")


def test_bootstrap_interval_keys_are_allowed(doc: dict[str, Any]) -> None:
    with_ci = copy.deepcopy(doc)
    measurement = with_ci["outcomes"][0]["measurements"][0]
    measurement.update({"ci_low": 0.5, "ci_high": 1.5, "level": 0.95, "n_resamples": 200, "on": "ci_high",
                        "resample_share": 0.97, "min_resample_share": 0.9})
    assert schema_errors(with_ci) == []
    measurement["on"] = "upper"
    assert any("$.outcomes[0].measurements[0].on" in e for e in schema_errors(with_ci))


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "half.json"
    bad.write_text('{"format": ')
    with pytest.raises(DataError, match="half.json: cannot read results JSON"):
        load_results_file(bad)


pytest_plugins = ["pytester"]


def test_a_suite_whose_data_never_loaded_is_left_out_not_a_crash(
    run: PluginRun, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    folder = run.suite.parent
    text = run.suite.read_text().replace(
        "reference: {structures: structures.extxyz}",
        f"reference: {{structures: {folder / 'structures.extxyz'}, sha256: {'f' * 64}}}",
    ).replace("a.model", str(folder / "a.model")).replace("b.model", str(folder / "b.model"))
    suite = tmp_path / "wrongpin.suite.yaml"
    suite.write_text(text)
    results = tmp_path / "results.json"
    outcome = pytester.runpytest(str(suite), "-p", "no:cacheprovider", f"--harness-results={results}")
    assert outcome.ret == 1
    outcome.stdout.fnmatch_lines(["*mlff-harness: suite 'tiny-report' left out of the report:*sha256*"])
    assert "INTERNALERROR" not in outcome.stdout.str()
    doc = load_results_file(results)
    assert doc["suites"] == [] and doc["passed"] is False
    # each check is recorded failed, saying why it could not run (never left out, never passed)
    assert len(doc["outcomes"]) == 4 and not any(o["passed"] for o in doc["outcomes"])
    assert all(o["reason"].startswith("could not run: ") and "sha256" in o["reason"] for o in doc["outcomes"])


def test_shap_summaries_cost_a_fit_only_when_asked(run: PluginRun, pytester: pytest.Pytester, tmp_path: Path) -> None:
    """No check needs a surrogate here: results carry SHAP only with --harness-explain."""
    folder = run.suite.parent
    text = run.suite.read_text()
    text = text[: text.index("  - gradcam_locus:")].replace("structures.extxyz", str(folder / "structures.extxyz"))
    text = text.replace("a.model", str(folder / "a.model")).replace("b.model", str(folder / "b.model"))
    suite = tmp_path / "accuracy_only.suite.yaml"
    suite.write_text(text)
    plain, explained = tmp_path / "plain.json", tmp_path / "explained.json"
    pytester.runpytest(str(suite), "-p", "no:cacheprovider", f"--harness-results={plain}").assert_outcomes(passed=1)
    pytester.runpytest(
        str(suite), "-p", "no:cacheprovider", f"--harness-results={explained}", "--harness-explain"
    ).assert_outcomes(passed=1)
    models_plain = load_results_file(plain)["suites"][0]["models"]
    models_explained = load_results_file(explained)["suites"][0]["models"]
    assert list(models_plain) == ["candidate"] and "shap" not in models_plain["candidate"]
    assert len(models_explained["candidate"]["shap"]["top"]) == 20


@pytest.mark.parametrize(
    ("option", "message"),
    [("--harness-step=-1", "--harness-step must be >= 0"), ("--harness-date=yesterday", "is not ISO 8601")],
)
def test_bad_checkpoint_options_are_usage_errors(pytester: pytest.Pytester, option: str, message: str) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
