"""Reports: the summary table and the versioned results document."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pytest

from harness import __version__
from harness.gate.checks import CheckOutcome, Measurement
from harness.reports.report import RESULTS_FORMAT, results_document, summary_table, write_json
from harness.suite.bounds import Bound

WHEN = datetime(2024, 5, 1, 12, 30, 0, tzinfo=timezone.utc)


def _outcomes() -> list[CheckOutcome]:
    rmse_bound = Bound(max=5.0)
    ratio_bound = Bound(min=1.5)
    r2_bound = Bound(min=0.3, max=1.0)
    return [
        CheckOutcome(
            check="accuracy",
            kind="accuracy",
            model="candidate",
            line=12,
            measurements=(Measurement("energy_rmse_meV_per_atom", 3.25, rmse_bound, True),),
        ),
        CheckOutcome(
            check="cr-locus",
            kind="gradcam_locus",
            model="baseline_v1",
            line=20,
            measurements=(Measurement("mean_ratio_to_host", 1.125, ratio_bound, False),),
        ),
        CheckOutcome(
            check="shap-what",
            kind="shap_classes",
            model="candidate",
            line=31,
            measurements=(
                Measurement("surrogate_cv_r2", 0.1, r2_bound, False),
                Measurement("involving_share", 0.75, Bound(min=0.5), False, evaluated=False),
            ),
            reason="surrogate R^2 too low",
            details={"cv": float("nan"), "nested": [1.0, float("inf")], "fine": 0.5},
        ),
    ]


ACCURACY = {
    "candidate": {
        "energy_rmse_meV_per_atom": 3.25,
        "energy_mae_meV_per_atom": 2.5,
        "force_rmse_meV_per_A": 41.5,
        "force_mae_meV_per_A": 30.25,
    },
    "baseline_v1": {
        "energy_rmse_meV_per_atom": 7.75,
        "energy_mae_meV_per_atom": 6.5,
        "force_rmse_meV_per_A": float("nan"),
        "force_mae_meV_per_A": 55.0,
    },
}


def _row(table: str, *cells: str) -> str:
    rows = [line for line in table.splitlines() if all(c in line for c in cells)]
    assert rows, f"no row with {cells} in\n{table}"
    return rows[0]


def test_summary_table_lists_everything() -> None:
    table = summary_table(_outcomes(), ACCURACY)
    header = table.splitlines()[0]
    for column in ("model", "check", "metric", "value", "threshold", "result"):
        assert column in header
    assert set(table.splitlines()[1]) == {"-"}

    row = _row(table, "candidate", "accuracy", "energy_rmse_meV_per_atom")
    assert "3.25" in row and "<= 5" in row and row.rstrip().endswith("PASS")

    row = _row(table, "baseline_v1", "cr-locus", "mean_ratio_to_host")
    assert "1.125" in row and ">= 1.5" in row and row.rstrip().endswith("FAIL")

    row = _row(table, "shap-what", "surrogate_cv_r2")
    assert "0.1" in row and "[0.3, 1]" in row and row.rstrip().endswith("FAIL")

    row = _row(table, "shap-what", "involving_share")
    assert "0.75" in row and ">= 0.5" in row and row.rstrip().endswith("not judged")

    row = _row(table, "shap-what", "reason")
    assert "FAIL: surrogate R^2 too low" in row


def test_summary_table_rmse_block_lists_each_model() -> None:
    table = summary_table(_outcomes(), ACCURACY)
    block = table.split("\n\n", 1)[1].splitlines()
    assert "E RMSE meV/atom" in block[0] and "F MAE meV/A" in block[0]
    cand = _row("\n".join(block), "candidate")
    for value in ("3.25", "2.5", "41.5", "30.25"):
        assert value in cand
    base = _row("\n".join(block), "baseline_v1")
    for value in ("7.75", "6.5", "n/a", "55"):
        assert value in base
    assert len(block) == 3


def test_summary_table_without_accuracy_has_no_rmse_block() -> None:
    table = summary_table(_outcomes()[:1], {})
    assert "RMSE" not in table
    assert "\n\n" not in table


def test_summary_table_nan_value_is_na() -> None:
    outcome = CheckOutcome(
        check="c", kind="accuracy", model="m", line=1,
        measurements=(Measurement("x", float("nan"), Bound(max=1.0), False),),
    )
    row = _row(summary_table([outcome], {}), "m", "c", "x")
    assert "n/a" in row and row.rstrip().endswith("FAIL")


def test_results_document() -> None:
    suites = [{"name": "cr_sb2te3", "path": "suites/cr.yaml", "score": float("nan")}]
    doc = results_document(suites, _outcomes(), timestamp=WHEN)
    assert doc["format"] == RESULTS_FORMAT == "mlff-harness-results/1"
    assert doc["harness_version"] == __version__
    assert doc["created"] == "2024-05-01T12:30:00+00:00"
    assert doc["passed"] is False
    assert doc["suites"] == [{"name": "cr_sb2te3", "path": "suites/cr.yaml", "score": None}]
    assert [o["model"] for o in doc["outcomes"]] == ["candidate", "baseline_v1", "candidate"]
    assert [o["passed"] for o in doc["outcomes"]] == [True, False, False]
    shap = doc["outcomes"][2]
    assert shap["reason"] == "surrogate R^2 too low"
    assert shap["details"] == {"cv": None, "nested": [1.0, None], "fine": 0.5}
    assert shap["measurements"][1]["evaluated"] is False
    assert shap["measurements"][0] == {
        "metric": "surrogate_cv_r2", "value": 0.1, "min": 0.3, "max": 1.0, "passed": False, "evaluated": True,
    }
    # strict JSON: no NaN/Infinity anywhere
    json.dumps(doc, allow_nan=False)


def test_results_document_passes_when_all_pass() -> None:
    doc = results_document([], _outcomes()[:1], timestamp=WHEN)
    assert doc["passed"] is True


def test_results_document_nan_measurement_is_null() -> None:
    outcome = CheckOutcome(
        check="c", kind="accuracy", model="m", line=1,
        measurements=(Measurement("x", float("nan"), Bound(max=1.0), False),),
    )
    doc = results_document([], [outcome], timestamp=WHEN)
    assert doc["outcomes"][0]["measurements"][0]["value"] is None
    json.dumps(doc, allow_nan=False)


def test_results_document_default_timestamp_is_utc_now() -> None:
    doc = results_document([], [])
    created = datetime.fromisoformat(doc["created"])
    assert created.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60


def test_write_json_is_deterministic_and_valid(tmp_path: Path) -> None:
    doc = results_document([{"b": 1, "a": 2}], _outcomes(), timestamp=WHEN)
    first, second = tmp_path / "one" / "results.json", tmp_path / "two" / "results.json"
    write_json(first, doc)
    write_json(second, doc)
    assert first.read_bytes() == second.read_bytes()
    loaded = json.loads(first.read_text())
    assert loaded == json.loads(json.dumps(doc))
    text = first.read_text()
    assert text.endswith("\n")
    assert "NaN" not in text and "Infinity" not in text
    # keys sorted: a reordered but equal document gives the same bytes
    reordered = {k: doc[k] for k in reversed(list(doc))}
    third = tmp_path / "three.json"
    write_json(third, reordered)
    assert third.read_bytes() == first.read_bytes()
    # overwriting is atomic and leaves no temporary files
    write_json(first, doc)
    assert sorted(p.name for p in first.parent.iterdir()) == ["results.json"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -math.inf])
def test_non_finite_values_become_null(value: float) -> None:
    doc = results_document([{"x": value, "y": [value, {"z": value}]}], [], timestamp=WHEN)
    assert doc["suites"] == [{"x": None, "y": [None, {"z": None}]}]


def test_results_document_checkpoint_places_the_run() -> None:
    doc = results_document([], _outcomes(), timestamp=WHEN, checkpoint={"step": 1200, "date": None, "label": "ep 3"})
    assert doc["checkpoint"] == {"step": 1200, "label": "ep 3"}  # None fields are dropped
    assert "checkpoint" not in results_document([], _outcomes(), timestamp=WHEN, checkpoint={"step": None})
    assert "checkpoint" not in results_document([], _outcomes(), timestamp=WHEN)


def test_results_document_refuses_unknown_checkpoint_fields() -> None:
    from harness.errors import DataError

    with pytest.raises(DataError, match=r"unknown checkpoint field\(s\) \['epoch'\]"):
        results_document([], _outcomes(), timestamp=WHEN, checkpoint={"epoch": 3})
