"""One task of a checkpoint sweep, as a Dask worker runs it: gate a checkpoint, write its results document.

The document is the plugin's (`pytest SUITE --harness-candidate CKPT --harness-results
FILE --harness-step N`): the same checks in the same order (each check of the
suite on each of its models, as harness.pytest_plugin.items collects them), the same
per-suite section (harness.reports.analysis.suite_section) and the same builder
(harness.reports.report.results_document), written atomically. tests/test_sweep.py
holds the two equal. This module imports no Dask.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Literal

from harness.sweep.plan import SweepTask

Status = Literal["passed", "failed", "error", "skipped"]


@dataclass(frozen=True)
class TaskResult:
    """What a worker sends back: small, so that the documents themselves stay on disk."""

    name: str
    status: Status  # passed / failed: the gate's verdict; error: the task could not finish
    seconds: float = 0.0
    error: str | None = None  # one line
    failed_checks: tuple[str, ...] = ()


def one_line(error: BaseException) -> str:
    """An error as one line: its type (unless it is one of ours) and its first line of text."""
    from harness.errors import HarnessError

    text = " ".join(str(error).split()) or repr(error)
    return text if isinstance(error, HarnessError) else f"{type(error).__name__}: {text}"


def gate_checkpoint(task: SweepTask) -> TaskResult:
    """Run every check of the suite on the checkpoint; write the document, then the task's stamp.

    Errors the harness can name (bad checkpoint, wrong sha256, unreadable data)
    and runtime failures (CUDA out of memory) come back as an ``error`` result;
    the caller's sweep goes on. A worker that dies (killed, out of host memory)
    loses only this task: finished documents were renamed into place already.
    An older document of the checkpoint (another suite, pin or setting) is moved
    to ``.sweep/NAME.previous.json`` first, so the folder never mixes runs.
    A check that raises once the checkpoint has loaded is recorded failed in the
    document, as the plugin records it (harness.gate.outcome.could_not_run); the task
    is then an ``error`` too, with no stamp, so a rerun tries it again.
    """
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():  # joblib runs one job per task in a daemonic worker: as it should here
            warnings.filterwarnings("ignore", message="Inside a Dask worker", category=UserWarning)
            document, could_not = _gate(task)
    except Exception as error:  # noqa: BLE001 - any failure of one checkpoint is reported, never raised
        return TaskResult(task.name, "error", time.perf_counter() - start, error=one_line(error))
    failed = tuple(f"{o['check']}[{o['model']}]" for o in document["outcomes"] if not o["passed"])
    if could_not:  # judged failed in its document, as the plugin's; the task did not finish every check
        more = f" (and {len(could_not) - 1} more)" if len(could_not) > 1 else ""
        message = f"{could_not[0]}{more}; {task.output} records it as failed"
        return TaskResult(task.name, "error", time.perf_counter() - start, error=message, failed_checks=failed)
    status: Status = "passed" if document["passed"] else "failed"
    return TaskResult(task.name, status, time.perf_counter() - start, failed_checks=failed)


def _check_pin(task: SweepTask) -> None:
    """The pin first, before the suite and its data load, with the sweep's fix (the manifest) in the message."""
    from harness.errors import ModelError
    from harness.files import sha256_file

    if not task.checkpoint.is_file():
        raise ModelError(f"checkpoint {task.checkpoint} does not exist (fix: check the path)")
    actual = sha256_file(task.checkpoint)
    if task.sha256 is not None and actual != task.sha256:
        raise ModelError(
            f"checkpoint {task.checkpoint}: sha256 mismatch, expected {task.sha256} but the file has {actual} "
            "(fix: restore the pinned file, or update the manifest if the new file is trusted)"
        )


def _gate(task: SweepTask) -> tuple[dict, list[str]]:
    from harness.errors import HarnessError
    from harness.files import atomic_write_text as write_text_atomically
    from harness.gate.checks import run_check
    from harness.gate.outcome import could_not_run
    from harness.gate.session import RunOptions, SuiteRun
    from harness.reports.analysis import suite_section
    from harness.reports.report import results_document, write_json
    from harness.suite.bounds import CANDIDATE
    from harness.suite.loader import load_suite
    from harness.suite.schema import check_label

    task.stamp.unlink(missing_ok=True)
    if task.output.exists():  # written for another suite, pin or setting: history must not show it as this one
        task.stamp.parent.mkdir(parents=True, exist_ok=True)
        os.replace(task.output, task.stamp.with_name(f"{task.name}.previous.json"))
    _check_pin(task)
    loaded = load_suite(task.suite)
    run = SuiteRun(
        loaded,
        RunOptions(
            candidate=task.checkpoint,
            candidate_sha256=task.sha256,
            allow_unpinned=task.allow_unpinned,
            device=task.device,
            dtype=task.dtype,
            batch_size=task.batch_size,
            cache_dir=task.cache_dir,
            progress=False,
        ),
    )
    run.model(CANDIDATE)  # a checkpoint that will not load is the task's error, like a wrong pin: never gated
    outcomes, could_not = [], []
    for index, check in enumerate(loaded.suite.checks):  # the plugin's collection order (harness.pytest_plugin.items)
        line = loaded.check_line(index)
        for model in loaded.suite.models_for(check):
            try:
                outcomes.append(run_check(check, model, run, line=line))
            except Exception as error:  # noqa: BLE001 - recorded failed, as the plugin records it
                outcomes.append(could_not_run(check, model, error, line=line))
                could_not.append(f"check {check_label(check)!r} on model {model!r} {outcomes[-1].reason}")
    try:
        sections = [suite_section(run, explain="all" if task.explain else "computed")]
    except HarnessError:  # as the plugin: its checks already failed saying why
        if not could_not:
            raise
        sections = []
    document = results_document(sections, outcomes, checkpoint=task.checkpoint_fields())
    write_json(task.output, document)
    if not could_not:  # else no stamp: the document is written (failed) and a rerun tries again (e.g. out of memory)
        write_text_atomically(task.stamp, task.key() + "\n")
    return document, could_not
