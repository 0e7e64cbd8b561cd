"""pytest collection: a suite file becomes one item per (check, model).

Failures print file:line, check, model, measured value and threshold, never a
traceback; a malformed suite is a collection error naming file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.gate.baseline import write_baseline
from harness.gate.checks import CheckOutcome, run_check
from harness.gate.outcome import FAIL, INCONCLUSIVE, could_not_run
from harness.gate.session import RunOptions, SuiteRun
from harness.suite.check_kinds import CheckBase, RegressionCheck
from harness.suite.loader import LoadedSuite, load_suite
from harness.suite.schema import check_label

OUTCOMES_KEY = pytest.StashKey[list[CheckOutcome]]()
RUNS_KEY = pytest.StashKey[dict[str, SuiteRun]]()
OPTIONS_KEY = pytest.StashKey[RunOptions]()


def wants_traceback(config: pytest.Config) -> bool:
    """``--harness-debug`` or pytest's ``--full-trace``: show tracebacks of unexpected errors."""
    return bool(config.getoption("harness_debug", False) or config.getoption("fulltrace", False))


def unexpected(error: BaseException) -> str:
    """An exception the harness did not raise on purpose, in one line."""
    text = " ".join(str(error).split()) or "(no message)"
    if len(text) > 300:
        text = text[:297] + "..."
    return (
        f"unexpected {type(error).__name__}: {text} (this is a bug of mlff-harness or of a library "
        "it calls; rerun with --harness-debug for the traceback and report it)"
    )


class CheckFailed(Exception):
    """A check's measured values broke its thresholds."""

    def __init__(self, outcome: CheckOutcome, path: Path) -> None:
        self.outcome = outcome
        self.path = path
        super().__init__(format_failure(outcome, path))


def format_failure(outcome: CheckOutcome, path: Path) -> str:
    """file:line: check 'x' on model 'y' FAILED, then one line per measurement."""
    lines = [f"{path}:{outcome.line}: check {outcome.check!r} ({outcome.kind}) on model {outcome.model!r} FAILED"]
    if outcome.failure_reason:
        lines.append(f"  reason: {outcome.failure_reason}")
    for m in outcome.measurements:
        if not m.evaluated:
            state = "not judged"
        elif m.undefined:
            state = f"FAIL (undefined: {m.undefined_reason})"
        else:
            state = "ok" if m.passed else "FAIL"
        value = "n/a" if m.undefined else f"{m.value:.6g}"
        lines.append(f"  {m.metric} = {value}  (threshold {m.bound.describe()})  {state}")
    return "\n".join(lines)


class BaselineWritten(HarnessError):
    """--harness-regen-baselines wrote a baseline: the item fails so a regeneration never passes a build
    (and its outcome is recorded failed, so a results document of the run does not say passed either)."""

    def __init__(self, path: Path, source: Path, line: int, check: str, model: str) -> None:
        super().__init__(
            f"{source}:{line}: check {check!r} on model {model!r}: baseline written to {path} "
            "(--harness-regen-baselines); review it, commit it, and rerun without the flag to gate"
        )


class SuiteFile(pytest.File):
    """A `*.suite.yaml` file."""

    def collect(self) -> Iterator[pytest.Item]:
        loaded = load_suite(self.path)
        for index, check in enumerate(loaded.suite.checks):
            line = loaded.check_line(index)
            for model in loaded.suite.models_for(check):
                yield CheckItem.from_parent(
                    self, name=f"{check_label(check)}[{model}]", check=check, model=model, line=line, loaded=loaded
                )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        """One line naming the file for any exception; pytest's traceback only when asked for."""
        if isinstance(excinfo.value, HarnessError):
            return f"mlff-harness: {excinfo.value}"
        if wants_traceback(self.config):
            return super().repr_failure(excinfo)
        return f"mlff-harness: {self.path}: could not collect this suite: {unexpected(excinfo.value)}"


class CheckItem(pytest.Item):
    """One check of a suite on one model."""

    def __init__(
        self, *, check: CheckBase, model: str, line: int, loaded: LoadedSuite, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.model = model
        self.line = line
        self.loaded = loaded

    @property
    def suite_run(self) -> SuiteRun:
        runs = self.config.stash[RUNS_KEY]
        key = str(self.loaded.path)
        if key not in runs:
            runs[key] = SuiteRun(self.loaded, self.config.stash[OPTIONS_KEY])
        return runs[key]

    def runtest(self) -> None:
        run = self.suite_run
        if isinstance(self.check, RegressionCheck) and run.options.regen_baselines:
            path = self.loaded.resolve(self.check.baseline)
            write_baseline(path, run, self.model)
            written = BaselineWritten(path, self.loaded.path, self.line, check_label(self.check), self.model)
            self.config.stash[OUTCOMES_KEY].append(could_not_run(self.check, self.model, written, line=self.line))
            self.user_properties.append(("outcome", FAIL))
            raise written
        try:
            outcome = run_check(self.check, self.model, run, line=self.line)
        except Exception as error:
            # recorded as failed (reason: the error in one line), so the results document never says passed
            # while the run fails; the item then fails as before, in one line (repr_failure)
            self.config.stash[OUTCOMES_KEY].append(could_not_run(self.check, self.model, error, line=self.line))
            self.user_properties.append(("outcome", FAIL))
            raise
        self.config.stash[OUTCOMES_KEY].append(outcome)
        for m in outcome.measurements:
            self.user_properties.append((f"{m.metric}", "n/a" if m.undefined else f"{m.value:.6g}"))
            self.user_properties.append((f"{m.metric}:threshold", m.bound.describe()))
            if m.undefined:
                self.user_properties.append((f"{m.metric}:undefined", str(m.undefined_reason)))
        self.user_properties.append(("outcome", outcome.status))
        if outcome.status == INCONCLUSIVE:
            self.user_properties.append(("inconclusive", str(outcome.unexplained)))
            if outcome.if_unexplained == "skip":
                pytest.skip(f"inconclusive (if_unexplained: skip): {outcome.unexplained}")
        if not outcome.passed:
            raise CheckFailed(outcome, self.loaded.path)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (CheckFailed, BaselineWritten)):
            return str(excinfo.value)
        if isinstance(excinfo.value, HarnessError):
            return (
                f"{self.loaded.path}:{self.line}: check {check_label(self.check)!r} on model "
                f"{self.model!r} could not run: {excinfo.value}"
            )
        if wants_traceback(self.config):
            return super().repr_failure(excinfo, style=style)
        return (
            f"{self.loaded.path}:{self.line}: check {check_label(self.check)!r} on model "
            f"{self.model!r} could not run: {unexpected(excinfo.value)}"
        )

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.line - 1, f"{self.loaded.suite.suite}::{self.name}"
