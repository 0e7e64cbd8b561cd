"""harness.reports.spread: gated values across seeds, precision and runs; margins and fragile flags."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.gate.outcome import is_fragile, margin
from harness.reports.spread import (
    Gated,
    default_variants,
    measure_spread,
    spread_document,
    spread_markdown,
    with_seed,
)
from harness.suite.loader import load_suite


def test_margin_is_signed_distance_to_the_nearest_end() -> None:
    assert margin(0.7, None, 0.7198) == pytest.approx(0.0198)
    assert margin(None, 0.6, 0.25) == pytest.approx(0.35)
    assert margin(0.0, 1.0, 0.9) == pytest.approx(0.1)  # nearer the max
    assert margin(0.7, None, 0.65) == pytest.approx(-0.05)  # outside: negative
    assert math.isnan(margin(0.7, None, float("nan")))


def test_fragile_when_the_margin_is_within_three_spreads() -> None:
    row = Gated("s", "error-classes", "surrogate_cv_r2", 0.7, None, "point", ">= 0.7",
                values={"ref": 0.7198, "f32": 0.7206, "seed1": 0.7050}, reference="ref")
    assert row.spread == pytest.approx(0.0156)
    assert row.margin == pytest.approx(0.0198)
    assert row.fragile  # 0.0198 < 3 x 0.0156
    steady = Gated("s", "accuracy", "energy_rmse_meV_per_atom", None, 3.0, "point", "<= 3",
                   values={"ref": 2.31, "f32": 2.3101}, reference="ref")
    assert not steady.fragile
    assert row.to_json()["fragile"] is True and steady.to_json()["fragile"] is False
    text = spread_markdown([row, steady])
    assert "**fragile**" in text and "| ok |" in text
    assert spread_document([row])["metrics"][0]["margin"] == pytest.approx(0.0198)


def test_is_fragile_reads_the_spread_a_bound_records() -> None:
    from harness.gate.outcome import Measurement
    from harness.suite.bounds import Bound

    bound = Bound(min=0.7, spread=0.01)
    assert is_fragile(Measurement("surrogate_cv_r2", 0.72, bound, True))  # margin 0.02 < 0.03
    assert not is_fragile(Measurement("surrogate_cv_r2", 0.75, bound, True))  # 0.05 >= 0.03
    assert not is_fragile(Measurement("surrogate_cv_r2", 0.72, Bound(min=0.7), True))  # no spread recorded


def test_variants_and_seeds() -> None:
    variants = default_variants("float64", 5, seeds=3)
    assert [v.label for v in variants] == [
        "cpu-float64-seed5", "cpu-float64-seed6", "cpu-float64-seed7", "cpu-float32-seed5"]
    loaded = load_suite(Path(__file__).resolve().parents[1] / "suites" / "cr_sb2te3" / "sanity.suite.yaml")
    seeded = with_seed(loaded.suite, 9)
    assert seeded.settings.seed == 9 and loaded.suite.settings.seed == 0
    assert [c.kind for c in seeded.checks] == [c.kind for c in loaded.suite.checks]


@pytest.fixture(scope="module")
def tiny_spread(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Gated], Path]:
    from tiny_run import build_tiny_suite

    root = tmp_path_factory.mktemp("spread")
    suite = build_tiny_suite(root / "suite")
    return measure_spread([suite], seeds=2, cache_dir=root / "cache"), root


def test_spread_of_a_tiny_suite(tiny_spread: tuple[list[Gated], Path]) -> None:
    rows, _ = tiny_spread
    by_metric = {(r.check, r.metric): r for r in rows}
    assert set(by_metric) == {("accuracy", "energy_rmse_meV_per_atom"), ("gradcam_locus", "relu_zero_fraction"),
                              ("shap_classes", "surrogate_cv_r2"), ("shap_classes", "involving_share")}
    accuracy = by_metric[("accuracy", "energy_rmse_meV_per_atom")]
    assert list(accuracy.values) == ["cpu-float64-seed0", "cpu-float64-seed1", "cpu-float32-seed0"]
    # nothing random in an RMSE: the seeds agree exactly, float32 only to single precision
    assert accuracy.values["cpu-float64-seed0"] == accuracy.values["cpu-float64-seed1"]
    assert accuracy.values["cpu-float32-seed0"] == pytest.approx(accuracy.values["cpu-float64-seed0"], rel=1e-3)
    assert 0 < accuracy.spread < 1e-3 * accuracy.values["cpu-float64-seed0"]
    assert accuracy.margin == pytest.approx(50.0 - accuracy.values["cpu-float64-seed0"])
    # the surrogate's CV folds follow the seed: its R^2 moves
    r2 = by_metric[("shap_classes", "surrogate_cv_r2")]
    assert r2.values["cpu-float64-seed0"] != r2.values["cpu-float64-seed1"]
    assert r2.spread > 0


def test_cli_spread_adds_a_results_file_and_writes_json(
    tiny_spread: tuple[list[Gated], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A results document of the same run (same device, precision, seed) gives the reference's values."""
    rows, root = tiny_spread
    suite = root / "suite" / "tiny.suite.yaml"
    results = root / "run.json"
    # the plugin's results document, built in process from the same checks
    from harness.gate.checks import run_check
    from harness.gate.session import RunOptions, SuiteRun
    from harness.reports.report import results_document, write_json

    loaded = load_suite(suite)
    run = SuiteRun(loaded, RunOptions(cache_dir=root / "cache", progress=False))
    outcomes = [run_check(c, m, run, line=loaded.check_line(i))
                for i, c in enumerate(loaded.suite.checks) for m in loaded.suite.models_for(c)]
    from harness.reports.analysis import suite_section

    write_json(results, results_document([suite_section(run, explain="computed")], outcomes))
    out = root / "spread.json"
    code = main(["spread", str(suite), "--seeds", "1", "--cache", str(root / "cache"), "--results", str(results),
                 "-o", str(out)])
    assert code == 0
    assert "| accuracy | energy_rmse_meV_per_atom |" in capsys.readouterr().out
    document = json.loads(out.read_text())
    for metric in document["metrics"]:
        values = metric["values"]
        label = next(k for k in values if k.startswith("run.json"))
        assert values[label] == pytest.approx(values["cpu-float64-seed0"], rel=1e-12), metric["metric"]


def test_cli_spread_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spread", str(tmp_path)]) == 2  # a folder without suites
    assert "no *.suite.yaml" in capsys.readouterr().err
    suite = Path(__file__).resolve().parents[1] / "suites" / "cr_sb2te3" / "release_gate.suite.yaml"
    assert main(["spread", str(suite), "--seeds", "0"]) == 2


def test_report_table_json_and_html_flag_a_fragile_pass() -> None:
    from harness.gate.outcome import CheckOutcome, Measurement
    from harness.reports.html_report import _result
    from harness.reports.report import results_document, summary_table
    from harness.reports.results_schema import validate_results
    from harness.suite.bounds import Bound

    thin = Measurement("surrogate_cv_r2", 0.7198, Bound(min=0.7, spread=0.0156), True)
    wide = Measurement("angular_l_share", 0.25, Bound(max=0.6, spread=0.05), True)
    outcome = CheckOutcome("error-classes", "shap_classes", "candidate", 3, (thin, wide))
    table = summary_table([outcome], {})
    assert [line.split()[-1] for line in table.splitlines()[2:4]] == ["(fragile)", "PASS"]
    document = validate_results(results_document([], [outcome]))
    first, second = document["outcomes"][0]["measurements"]
    assert (first["fragile"], first["spread"], second["fragile"]) == (True, 0.0156, False)
    assert "fragile" in _result(document["outcomes"][0], first)
    assert "fragile" not in _result(document["outcomes"][0], second)
