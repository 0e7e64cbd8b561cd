"""`mlff-harness history`: ordering, the metric table, where a check first failed, the curves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.errors import DataError
from harness.gate.checks import CheckOutcome, Measurement
from harness.reports.history import UNGATED, format_history, load_history, metric_series, write_history_plots
from harness.reports.report import results_document, write_json
from harness.suite.bounds import Bound

from conftest import png_size

STEPS = [0, 500, 1000, 1500, 2000, 2500]
FAIL_FROM = 1500  # planted: rank correlation drops below its 0.9 threshold here and stays there
SHA = "ab" * 32


def _rank_correlation(step: int) -> float:
    return 0.97 - 0.01 * (step / 500) if step < FAIL_FROM else 0.6 - 0.05 * (step - FAIL_FROM) / 500


def _rmse(step: int) -> float:
    return 10.0 / (1 + step / 500)  # improves monotonically: passes its bound from step 500 on


def _suite(step: int) -> dict:
    acc = {"energy_rmse_meV_per_atom": _rmse(step), "energy_mae_meV_per_atom": 1.0,
           "force_rmse_meV_per_A": 50.0, "force_mae_meV_per_A": 40.0}
    return {
        "suite": "s",
        "provenance": {
            "harness_version": "0", "suite_file": "s.suite.yaml",
            "reference": {"path": "r.extxyz", "sha256": SHA, "n_structures": 3, "n_atoms": 30},
            "models": {"candidate": {"checkpoint": f"ckpt-{step}.model", "sha256": SHA}},
            "settings": {"device": "cpu", "dtype": "float64", "batch_size": 4, "attribution": {},
                         "surrogate": {}, "soap": {}, "seed": 0},
        },
        "accuracy": {"candidate": acc},
    }


def _document(step: int | None, *, date: str | None = None) -> dict:
    drift = _rank_correlation(step if step is not None else 0)
    rmse = _rmse(step if step is not None else 0)
    outcomes = [
        CheckOutcome("accuracy", "accuracy", "candidate", 5,
                     (Measurement("energy_rmse_meV_per_atom", rmse, Bound(max=8.0), rmse <= 8.0),)),
        CheckOutcome("attribution-drift", "regression", "candidate", 9,
                     (Measurement("gradcam_rank_correlation", drift, Bound(min=0.9), drift >= 0.9),)),
    ]
    return results_document([_suite(step or 0)], outcomes, checkpoint={"step": step, "date": date})


def _write_run(folder: Path, *, with_steps: bool = True) -> Path:
    """One results file per checkpoint, file names in a different order than the steps, mtimes reversed."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, step in enumerate(STEPS):
        path = folder / f"run-{(7 * i) % len(STEPS)}.json"  # names shuffled against steps
        write_json(path, _document(step if with_steps else None))
        os.utime(path, (1_000_000 - step, 1_000_000 - step))  # mtimes reversed against steps
    return folder


def test_orders_by_step_not_by_name_or_time(tmp_path: Path) -> None:
    history = load_history(_write_run(tmp_path / "run"))
    assert history.ordered_by == "step" and history.warnings == ()
    assert [c.step for c in history.checkpoints] == STEPS
    assert history.labels == [f"step {s}" for s in STEPS]


def test_series_and_first_failure_at_the_planted_step(tmp_path: Path) -> None:
    history = load_history(_write_run(tmp_path / "run"))
    series = {(s.model, s.check, s.metric): s for s in metric_series(history)}
    drift = series[("candidate", "attribution-drift", "gradcam_rank_correlation")]
    assert drift.values == pytest.approx([_rank_correlation(s) for s in STEPS])
    assert drift.bound_min == 0.9 and drift.bound_max is None
    assert STEPS[drift.first_failure] == FAIL_FROM
    assert STEPS[drift.first_check_failure] == FAIL_FROM
    accuracy = series[("candidate", "accuracy", "energy_rmse_meV_per_atom")]
    assert STEPS[accuracy.first_failure] == 0  # 10 meV/atom > 8 at step 0, passes afterwards
    ungated = series[("candidate", UNGATED, "force_rmse_meV_per_A")]
    assert ungated.values == (50.0,) * len(STEPS) and ungated.first_failure is None
    assert ("candidate", UNGATED, "energy_rmse_meV_per_atom") not in series  # gated already


def test_table_marks_failures_and_where_each_check_first_failed(tmp_path: Path) -> None:
    history = load_history(_write_run(tmp_path / "run"))
    table = format_history(history, metric_series(history))
    row = next(line for line in table.splitlines() if "gradcam_rank_correlation" in line)
    cells = row.split()
    assert cells[-2:] == ["step", str(FAIL_FROM)]  # "first failed at" column
    assert f"{_rank_correlation(1000):.4g}" in row and f"{_rank_correlation(1500):.4g} FAIL" in row
    assert row.count("FAIL") == STEPS.index(2500) - STEPS.index(FAIL_FROM) + 1
    assert f"check 'attribution-drift' on model 'candidate': first FAILED at step {FAIL_FROM}" in table
    assert "check 'accuracy' on model 'candidate': first FAILED at step 0" in table


def test_falls_back_to_mtime_with_a_warning(tmp_path: Path) -> None:
    history = load_history(_write_run(tmp_path / "run", with_steps=False))
    assert history.ordered_by == "mtime"
    assert len(history.warnings) == 1 and "--harness-step" in history.warnings[0]
    mtimes = [c.mtime for c in history.checkpoints]
    assert mtimes == sorted(mtimes)


def test_orders_by_date_when_every_file_has_one(tmp_path: Path) -> None:
    folder = tmp_path / "dated"
    folder.mkdir()
    for day, name in [(3, "a"), (1, "b"), (2, "c")]:
        write_json(folder / f"{name}.json", _document(None, date=f"2024-05-0{day}T10:00"))
    history = load_history(folder)
    assert history.ordered_by == "date"
    assert [c.path.name for c in history.checkpoints] == ["b.json", "c.json", "a.json"]


def test_duplicate_steps_and_bad_files_are_errors(tmp_path: Path) -> None:
    folder = tmp_path / "dup"
    folder.mkdir()
    write_json(folder / "a.json", _document(100))
    write_json(folder / "b.json", _document(100))
    with pytest.raises(DataError, match=r"b\.json and .*a\.json both claim checkpoint step 100"):
        load_history(folder)
    (folder / "b.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match=r"b\.json: not a valid mlff-harness-results/1 document"):
        load_history(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no \\*.json results files"):
        load_history(tmp_path / "empty")


def test_cli_prints_table_and_draws_curves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write_run(tmp_path / "run")
    png, html = tmp_path / "curves.png", tmp_path / "curves.html"
    assert main(["history", str(folder), "-o", str(png)]) == 0
    out = capsys.readouterr().out
    assert "6 checkpoints, ordered by step" in out and f"first FAILED at step {FAIL_FROM}" in out
    width, height = png_size(png.read_bytes())
    assert width >= 1000 and height >= 600  # a grid: 2 gated metrics + ungated force RMSE -> 2 x 2 panels
    assert main(["history", str(folder), "-o", str(html)]) == 0
    page = html.read_text()
    assert page.count('data-plot="history"') == 3 and 'id="table"' in page
    assert main(["history", str(folder), "-o", str(tmp_path / "curves.svg")]) == 2
    assert "written as .png or .html" in capsys.readouterr().err


def test_write_history_plots_html_embeds_warning(tmp_path: Path) -> None:
    history = load_history(_write_run(tmp_path / "run", with_steps=False))
    page = write_history_plots(tmp_path / "h.html", history, metric_series(history)).read_text()
    assert "ordered by file modification time" in page
