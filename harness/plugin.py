"""The pytest plugin (registered through the `pytest11` entry point `mlff_harness`).

`pytest suites/<system>` collects every `*.suite.yaml` file into one item per
(check, model); options live in their own group; after the run a summary
table shows every measured value, its threshold and the outcome, with RMSE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.items import OPTIONS_KEY, OUTCOMES_KEY, RUNS_KEY, SuiteFile
from harness.report import results_document, summary_table, write_json
from harness.session import RunOptions

SUITE_SUFFIXES = (".suite.yaml", ".suite.yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlff-harness", "mlff-harness: release gates for machine-learned force fields")
    group.addoption("--candidate", metavar="PATH", help="Checkpoint to gate instead of the suite's candidate.")
    group.addoption(
        "--candidate-sha256", metavar="HEX", help="Pin --candidate: refuse it unless its sha256 matches."
    )
    group.addoption(
        "--allow-unpinned",
        action="store_true",
        help="Allow loading a --candidate checkpoint with no sha256 pin (checkpoints are pickles: they can run code).",
    )
    group.addoption("--device", choices=["cpu", "cuda"], default="cpu", help="Where models run (default cpu).")
    group.addoption("--dtype", choices=["float32", "float64"], help="Model precision (default: the suite's).")
    group.addoption("--batch-size", type=int, metavar="N", help="Structures per batch (default: the suite's).")
    group.addoption("--harness-results", metavar="FILE", help="Write every measured value and outcome as JSON.")
    group.addoption(
        "--harness-cache",
        metavar="DIR",
        help="Cache of model outputs, SOAP and surrogates (default: pytest's cache folder).",
    )
    group.addoption("--harness-no-cache", action="store_true", help="Recompute everything; write no cache.")
    group.addoption(
        "--harness-regen-baselines",
        action="store_true",
        help="Write the baselines of regression checks from this run (those checks are then skipped).",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--harness-no-cache"):
        cache_dir = None
    elif config.getoption("--harness-cache"):
        cache_dir = Path(config.getoption("--harness-cache")).resolve()
    elif getattr(config, "cache", None) is not None:
        cache_dir = config.cache.mkdir("mlff-harness")
    else:
        cache_dir = None
    batch = config.getoption("--batch-size")
    if batch is not None and batch < 1:
        raise pytest.UsageError("--batch-size must be a positive integer")
    candidate = config.getoption("--candidate")
    config.stash[OPTIONS_KEY] = RunOptions(
        candidate=Path(candidate).resolve() if candidate else None,
        candidate_sha256=config.getoption("--candidate-sha256"),
        allow_unpinned=config.getoption("--allow-unpinned"),
        device=config.getoption("--device"),
        dtype=config.getoption("--dtype"),
        batch_size=batch,
        cache_dir=cache_dir,
        regen_baselines=config.getoption("--harness-regen-baselines"),
    )
    config.stash[OUTCOMES_KEY] = []
    config.stash[RUNS_KEY] = {}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(SUITE_SUFFIXES):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def _accuracy_by_model(config: pytest.Config) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for run in config.stash[RUNS_KEY].values():
        for name in run.evaluated_models():
            label = name if len(config.stash[RUNS_KEY]) == 1 else f"{run.suite.suite}:{name}"
            table[label] = run.accuracy(name)
    return table


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    outcomes = config.stash.get(OUTCOMES_KEY, [])
    if not outcomes:
        return
    terminalreporter.section("mlff-harness summary")
    terminalreporter.write_line(summary_table(outcomes, _accuracy_by_model(config)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    path = config.getoption("--harness-results")
    if not path or OUTCOMES_KEY not in config.stash:
        return
    suites = []
    for run in config.stash[RUNS_KEY].values():
        evaluated = run.evaluated_models()
        suites.append(
            {
                "suite": run.suite.suite,
                "provenance": run.provenance(),
                "accuracy": {n: run.accuracy(n) for n in evaluated},
            }
        )
    write_json(Path(path), results_document(suites, config.stash[OUTCOMES_KEY]))
