"""`mlff-harness compare`: flipped outcomes, drift, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from harness.gate.checks import CheckOutcome, Measurement
from harness.reports.compare import diff_results, format_rows
from harness.reports.report import results_document, write_json
from harness.suite.bounds import Bound

from conftest import cli_subprocess


def _doc(rmse: float, corr: float) -> dict:
    outcomes = [
        CheckOutcome("accuracy", "accuracy", "candidate", 25,
                     (Measurement("energy_rmse_meV_per_atom", rmse, Bound(max=3.0), rmse <= 3.0),)),
        CheckOutcome("stability", "regression", "candidate", 39,
                     (Measurement("gradcam_rank_correlation", corr, Bound(min=0.9), corr >= 0.9),)),
    ]
    return results_document([], outcomes)


def _write(tmp_path: Path, name: str, doc: dict) -> Path:
    path = tmp_path / name
    write_json(path, doc)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return cli_subprocess("compare", *args)


def test_rows_mark_flips_and_drift() -> None:
    rows = diff_results(_doc(2.3, 1.0), _doc(49.9, -0.19))
    assert {(r.metric, r.flipped_to_fail) for r in rows} == {
        ("energy_rmse_meV_per_atom", True),
        ("gradcam_rank_correlation", True),
    }
    text = format_rows(rows, tolerance=0.05)
    assert "FLIPPED TO FAIL" in text and "2.3" in text and "49.9" in text


def test_small_drift_under_tolerance_is_not_marked() -> None:
    rows = diff_results(_doc(2.30, 1.0), _doc(2.31, 1.0))
    text = format_rows(rows, tolerance=0.05)
    assert "drift " not in text and "FLIPPED" not in text
    assert "drift 0.4%" in format_rows(rows, tolerance=0.001)


def test_cli_exit_codes(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.json", _doc(2.3, 1.0))
    same = _write(tmp_path, "same.json", _doc(2.3, 1.0))
    bad = _write(tmp_path, "bad.json", _doc(49.9, -0.19))
    assert _cli(str(good), str(same)).returncode == 0
    flipped = _cli(str(good), str(bad))
    assert flipped.returncode == 1
    assert "FLIPPED TO FAIL" in flipped.stdout
    (tmp_path / "junk.json").write_text(json.dumps({"format": "other"}))
    refused = _cli(str(good), str(tmp_path / "junk.json"))
    assert refused.returncode == 2 and "not a valid mlff-harness-results/1 document" in refused.stderr
