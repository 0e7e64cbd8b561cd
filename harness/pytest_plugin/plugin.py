"""The pytest plugin (registered through the `pytest11` entry point `mlff_harness`).

`pytest suites/<system>` collects every `*.suite.yaml` file into one item per
(check, model); options live in their own group; after the run a summary
table shows every measured value, its threshold and the outcome, with RMSE.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pytest

from harness import profile, progress
from harness._warnings import ini_filter_lines
from harness.cache import default_cache_dir
from harness.errors import HarnessError
from harness.files import output_path_problem
from harness.gate.checks import CheckOutcome
from harness.gate.session import RunOptions
from harness.pytest_plugin.items import OPTIONS_KEY, OUTCOMES_KEY, RUNS_KEY, SuiteFile
from harness.reports.report import results_document, summary_table, write_json

SUITE_SUFFIXES = (".suite.yaml", ".suite.yml")
_PROGRESS_KEY = pytest.StashKey[tuple[Any, Any]]()
_PROFILE_KEY = pytest.StashKey[tuple[profile.Profile, float]]()


# Old option names (no prefix: they clashed with a project's own --device), kept for one release.
DEPRECATED_OPTIONS = {
    "--candidate": "--harness-candidate",
    "--candidate-sha256": "--harness-candidate-sha256",
    "--allow-unpinned": "--harness-allow-unpinned",
    "--device": "--harness-device",
    "--dtype": "--harness-dtype",
    "--batch-size": "--harness-batch-size",
}
_ALIAS_KINDS: dict[str, dict[str, Any]] = {
    "--candidate": {"metavar": "PATH"},
    "--candidate-sha256": {"metavar": "HEX"},
    "--allow-unpinned": {"action": "store_true"},
    "--device": {"choices": ["cpu", "cuda"]},
    "--dtype": {"choices": ["float32", "float64"]},
    "--batch-size": {"type": int, "metavar": "N"},
}


def _alias_dest(old: str) -> str:
    return "harness_deprecated_" + old.lstrip("-").replace("-", "_")


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> Any:
    """Register the deprecated aliases last: after every plugin and the project's conftests, so that a
    project's own ``--device`` (or any other old name) is theirs and nothing clashes."""
    result = yield
    group = parser.getgroup("mlff-harness")
    for old, new in DEPRECATED_OPTIONS.items():
        # someone else registers this name: it keeps its meaning there, and --harness-X is ours
        with contextlib.suppress(argparse.ArgumentError, ValueError):
            group.addoption(old, dest=_alias_dest(old), default=None, help=f"(deprecated: use {new})",
                            **_ALIAS_KINDS.get(old, {}))
    return result


def _option(config: pytest.Config, new: str) -> Any:
    """The value of ``--harness-X``, else of its deprecated alias (warned about once, naming the new option)."""
    value = config.getoption(new)
    old = next(o for o, n in DEPRECATED_OPTIONS.items() if n == new)
    alias = config.getoption(_alias_dest(old), None)
    if alias is None or alias is False:
        return value
    config.issue_config_time_warning(
        pytest.PytestDeprecationWarning(f"mlff-harness: {old} is deprecated and will be removed; use {new}"),
        stacklevel=2,
    )
    if value not in (None, False):
        return value
    return alias


def _candidate(config: pytest.Config) -> tuple[Path | None, str | None]:
    """--harness-candidate checked once for the whole session: an existing, readable file matching its pin."""
    candidate, pin = _option(config, "--harness-candidate"), _option(config, "--harness-candidate-sha256")
    if pin is not None and not candidate:
        raise pytest.UsageError("--harness-candidate-sha256 without --harness-candidate (fix: pass both)")
    if not candidate:
        return None, None
    path = Path(candidate).resolve()
    problem = None
    if not path.exists():
        problem = "no such file"
    elif not path.is_file():
        problem = "not a file"
    elif not os.access(path, os.R_OK):
        problem = "cannot be read (permission denied)"
    if problem:
        raise pytest.UsageError(f"--harness-candidate {candidate}: {problem} (fix: pass the path of a checkpoint file)")
    if pin is not None:
        from harness.files import sha256_file

        pin = pin.strip().lower()
        if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise pytest.UsageError(f"--harness-candidate-sha256 {pin!r} is not a sha256 (64 hex digits)")
        actual = sha256_file(path)
        if actual != pin:
            raise pytest.UsageError(
                f"--harness-candidate {candidate}: sha256 {actual} does not match the pin {pin} "
                "(fix: pin the file you mean to gate, or gate the file that was pinned)"
            )
    return path, pin


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlff-harness", "mlff-harness: release gates for machine-learned force fields")
    group.addoption("--harness-candidate", metavar="PATH", help="Checkpoint to gate instead of the suite's candidate.")
    group.addoption(
        "--harness-candidate-sha256",
        metavar="HEX",
        help="Pin --harness-candidate: refuse it unless its sha256 matches.",
    )
    group.addoption(
        "--harness-allow-unpinned",
        action="store_true",
        help="Allow loading a --harness-candidate checkpoint with no sha256 pin "
        "(checkpoints are pickles: they can run code).",
    )
    group.addoption("--harness-device", choices=["cpu", "cuda"], help="Where models run (default cpu).")
    group.addoption("--harness-dtype", choices=["float32", "float64"], help="Model precision (default: the suite's).")
    group.addoption(
        "--harness-batch-size", type=int, metavar="N", help="Structures per batch (default: the suite's)."
    )
    # the unprefixed old names are registered later, in pytest_load_initial_conftests
    group.addoption("--harness-results", metavar="FILE", help="Write every measured value and outcome as JSON.")
    group.addoption(
        "--harness-html", metavar="FILE", help="Write a self-contained HTML report (tables and plots) of the run."
    )
    group.addoption(
        "--harness-explain",
        action="store_true",
        help="Fit the SHAP surrogate of every evaluated model so the results carry its top features and R^2 even "
        "where no check needed them (about a minute per model for 300 structures; cached). Implied by --harness-html. "
        "Given explicitly, also the per-atom pair-shell surrogate (top classes with distances, "
        "harness.reports.atom_summary).",
    )
    group.addoption(
        "--harness-scores",
        metavar="DIR",
        help="Write per-atom Grad-CAM scores as extxyz per model (and a chemiscope file if chemiscope is installed).",
    )
    group.addoption(
        "--harness-step", type=int, metavar="N", help="Training step of the gated checkpoint (mlff-harness history)."
    )
    group.addoption(
        "--harness-date", metavar="ISO8601", help="Date of the gated checkpoint (for mlff-harness history)."
    )
    group.addoption("--harness-label", metavar="TEXT", help="A label of the gated checkpoint, shown in history.")
    group.addoption(
        "--harness-cache",
        metavar="DIR",
        help="Cache of model outputs, SOAP and surrogates (default: .harness-cache in the current folder, "
        "shared with the mlff-harness command).",
    )
    group.addoption("--harness-no-cache", action="store_true", help="Recompute everything; write no cache.")
    group.addoption(
        "--harness-profile",
        action="store_true",
        help="Print the seconds spent per stage (read, load, graphs, model, SOAP, surrogate, SHAP, checks, report).",
    )
    group.addoption(
        "--harness-profile-json",
        metavar="FILE",
        help="Also write the stage seconds as JSON (implies --harness-profile).",
    )
    group.addoption(
        "--harness-debug",
        action="store_true",
        help="Show the traceback of unexpected errors (otherwise one line naming the suite file and check).",
    )
    group.addoption(
        "--harness-regen-baselines",
        action="store_true",
        help="Write the baselines of regression checks from this run; those checks then fail, saying what was "
        "written, so a regeneration never passes a build (rerun without the flag to gate).",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in ini_filter_lines():  # third-party warnings nobody here can act on (harness/_warnings.py)
        config.addinivalue_line("filterwarnings", line)
    if config.getoption("--harness-no-cache"):
        cache_dir = None
    elif config.getoption("--harness-cache"):
        cache_dir = Path(config.getoption("--harness-cache")).resolve()
    else:  # the folder the CLI uses too (harness.cache.default_cache_dir), so either warms the other
        cache_dir = default_cache_dir(config.invocation_params.dir)
    batch = _option(config, "--harness-batch-size")
    if batch is not None and batch < 1:
        raise pytest.UsageError("--harness-batch-size must be a positive integer")
    candidate, pin = _candidate(config)
    config.stash[OPTIONS_KEY] = RunOptions(
        candidate=candidate,
        candidate_sha256=pin,
        allow_unpinned=bool(_option(config, "--harness-allow-unpinned")),
        device=_option(config, "--harness-device") or "cpu",
        dtype=_option(config, "--harness-dtype"),
        batch_size=batch,
        cache_dir=cache_dir,
        regen_baselines=config.getoption("--harness-regen-baselines"),
    )
    step, date = config.getoption("--harness-step"), config.getoption("--harness-date")
    if step is not None and step < 0:
        raise pytest.UsageError("--harness-step must be >= 0")
    if date is not None:
        try:
            datetime.fromisoformat(date)
        except ValueError:
            raise pytest.UsageError(f"--harness-date {date!r} is not ISO 8601 (e.g. 2024-05-01T12:00)") from None
    for option in ("--harness-results", "--harness-html"):
        value = config.getoption(option)
        problem = output_path_problem(value) if value else None
        if problem:
            raise pytest.UsageError(f"{option} {value}: {problem} (fix: give a writable file path)")
    config.stash[OUTCOMES_KEY] = []
    config.stash[RUNS_KEY] = {}
    _start_progress(config)
    if config.getoption("--harness-profile") or config.getoption("--harness-profile-json"):
        config.stash[_PROFILE_KEY] = (profile.start(), time.perf_counter())


def _start_progress(config: pytest.Config) -> None:
    """Progress bars draw on the terminal: a copy of stderr taken now, before pytest captures it."""
    if config.getoption("verbose") < -1 or not progress.is_terminal(sys.stderr):  # -qq: no bars
        return
    stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    config.stash[_PROGRESS_KEY] = (stream, progress.use_stream(stream))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    with profile.stage("checks"):  # what a check does beyond the named stages
        yield


def _profile_summary(config: pytest.Config, terminalreporter: Any) -> None:
    collector, started = config.stash[_PROFILE_KEY]
    wall = time.perf_counter() - started
    terminalreporter.section("mlff-harness profile")
    terminalreporter.write_line(collector.table())
    terminalreporter.write_line(f"{'outside':<10} {wall - collector.total:>8.2f}  (imports, collection, pytest)")
    terminalreporter.write_line(f"{'wall':<10} {wall:>8.2f}  (since the plugin started)")
    path = config.getoption("--harness-profile-json")
    if path:
        write_json(Path(path), {"stages_s": collector.to_json(), "stages_cpu_s": collector.cpu_json(),
                                "profiled_s": round(collector.total, 4), "wall_s": round(wall, 4),
                                "calls": dict(collector.calls)})


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PROFILE_KEY in config.stash:
        profile.stop()
        del config.stash[_PROFILE_KEY]
    if _PROGRESS_KEY in config.stash:
        stream, previous = config.stash[_PROGRESS_KEY]
        progress.use_stream(previous)
        stream.close()
        del config.stash[_PROGRESS_KEY]


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
    if _PROFILE_KEY in config.stash:
        _profile_summary(config, terminalreporter)
    outcomes = config.stash.get(OUTCOMES_KEY, [])
    if not outcomes:
        return
    terminalreporter.section("mlff-harness summary")
    try:
        table = summary_table(outcomes, _accuracy_by_model(config))
    except Exception as error:  # noqa: BLE001 - the checks have reported; a summary never becomes an INTERNALERROR
        from harness.pytest_plugin.items import unexpected

        text = f"{type(error).__name__}: {error}" if isinstance(error, HarnessError) else unexpected(error)
        table = f"mlff-harness: the summary table could not be made: {text}"
    terminalreporter.write_line(table)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the reports. A failure to write them (an unwritable path, a full disk, a bug)
    is one line and a non-zero exit, never an INTERNALERROR; a results file is written
    atomically, so it is either the new one or the one that was there before."""
    try:
        _finish_session(session)
    except Exception as error:  # noqa: BLE001 - the run is over: report, do not raise
        from harness.pytest_plugin.items import unexpected, wants_traceback

        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        write = reporter.write_line if reporter is not None else print  # write_line starts a new line
        known = isinstance(error, (HarnessError, OSError))
        text = f"{type(error).__name__}: {error}" if known else unexpected(error)
        write(f"mlff-harness: the reports were not written: {text}")
        if wants_traceback(session.config):
            write("".join(traceback.format_exception(error)))
        # 4: the output path given cannot be written; 3: anything else
        failed = pytest.ExitCode.USAGE_ERROR if isinstance(error, OSError) else pytest.ExitCode.INTERNAL_ERROR
        session.exitstatus = failed


def _finish_session(session: pytest.Session) -> None:
    config = session.config
    if OUTCOMES_KEY not in config.stash:
        return
    results, html, scores, explain = (
        config.getoption(o) for o in ("--harness-results", "--harness-html", "--harness-scores", "--harness-explain")
    )
    runs = list(config.stash[RUNS_KEY].values())
    if scores:
        from harness.reports.export import write_scores

        for run in runs:
            write_scores(run, Path(scores))
    if not (results or html):
        return
    with profile.stage("report"):
        _write_reports(config, runs, results, html, explain)


def _write_reports(
    config: pytest.Config, runs: list[Any], results: str | None, html: str | None, explain: bool
) -> None:
    from harness.reports.analysis import suite_section

    checkpoint = {
        "step": config.getoption("--harness-step"),
        "date": config.getoption("--harness-date"),
        "label": config.getoption("--harness-label"),
    }
    sections = []
    for run in runs:
        try:
            level: Literal["all", "computed"] = "all" if html or explain else "computed"
            sections.append(suite_section(run, explain=level, explain_atoms=bool(explain)))
        except HarnessError as err:  # e.g. its reference data never loaded: its checks already failed saying so
            config.get_terminal_writer().line(f"mlff-harness: suite {run.suite.suite!r} left out of the report: {err}")
    outcomes: list[CheckOutcome] = config.stash[OUTCOMES_KEY]
    document = results_document(sections, outcomes, checkpoint=checkpoint)
    if results:
        write_json(Path(results), document)
    if html:
        from harness.reports.html_report import write_html

        write_html(Path(html), document)
