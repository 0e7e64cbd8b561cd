"""A check that could not run is recorded failed: the results document never says `passed: true` while pytest fails.

The plugin (harness.pytest_plugin.items) and the sweep's task (harness.sweep.task) record the
same outcome: `passed: false`, status `fail`, reason `could not run: <the error
in one line>`, each gated metric null with a reason. Real tiny MACE checkpoints
and real extxyz (tests/tiny_run.py); the second model's checkpoint is bytes that
no checkpoint loader accepts, pinned by its sha256, so only checks on it fail.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import build_tiny_suite  # noqa: E402

pytest_plugins = ["pytester"]

SUITE = """\
suite: tiny-could-not-run
reference: {{structures: structures.extxyz}}
models:
  candidate: {{checkpoint: a.model, sha256: {sha_a}}}
  compare_with:
    other: {{checkpoint: b.model, sha256: {sha_b}}}
settings: {{dtype: float64, batch_size: 8, seed: 0}}
checks:
  - accuracy:
      models: [all]
      energy_rmse_meV_per_atom: {{max: 50.0}}
      force_rmse_meV_per_A: {{max: 100.0}}
"""


@pytest.fixture(scope="module")
def broken_other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny suite with one accuracy check on both models; `other` (b.model) is garbage, correctly pinned."""
    from harness.files import sha256_file

    root = build_tiny_suite(tmp_path_factory.mktemp("could-not-run") / "suite").parent
    (root / "b.model").write_bytes(b"these bytes are no checkpoint")
    suite = root / "broken.suite.yaml"
    suite.write_text(SUITE.format(sha_a=sha256_file(root / "a.model"), sha_b=sha256_file(root / "b.model")))
    (root / "tiny.suite.yaml").unlink()  # the suite tiny_run wrote pins the good b.model
    return suite


def _outcomes(document: dict) -> dict[str, dict]:
    return {o["model"]: o for o in document["outcomes"]}


def test_a_check_that_raises_is_a_failed_outcome_in_the_results(pytester: pytest.Pytester, broken_other: Path) -> None:
    from harness.reports.results_schema import load_results_file

    results = pytester.path / "results.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "--harness-no-cache", f"--harness-results={results}",
                                str(broken_other))  # fmt: skip
    text = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    assert "Traceback" not in text and "INTERNALERROR" not in text
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"{broken_other}:9: check 'accuracy' on model 'other' could not run: *torch.load*"])
    document = load_results_file(results)  # valid against the shipped schema
    assert document["passed"] is False
    outcomes = _outcomes(document)
    assert outcomes["candidate"]["passed"] is True and outcomes["candidate"]["status"] == "pass"
    other = outcomes["other"]
    assert (other["passed"], other["status"], other["line"], other["kind"]) == (False, "fail", 9, "accuracy")
    assert other["reason"].startswith("could not run: checkpoint ") and "torch.load failed" in other["reason"]
    assert str(broken_other.parent / "b.model") in other["reason"]
    assert "\n" not in other["reason"]
    assert {m["metric"]: (m["value"], m["passed"], m["undefined_reason"]) for m in other["measurements"]} == {
        "energy_rmse_meV_per_atom": (None, False, "the check could not run"),
        "force_rmse_meV_per_A": (None, False, "the check could not run"),
    }
    # the summary table says so too, in one line per value and one for the reason
    result.stdout.fnmatch_lines(["*other*accuracy*reason*FAIL: could not run: checkpoint *"])


def test_an_unexpected_error_is_recorded_in_one_line(
    pytester: pytest.Pytester, broken_other: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only the harness's own errors: a bug's exception type and message, never its traceback."""

    def raise_it(*args: object, **kwargs: object) -> None:
        raise KeyError("missing-key")

    monkeypatch.setattr("harness.pytest_plugin.items.run_check", raise_it)
    results = pytester.path / "results.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "--harness-no-cache", f"--harness-results={results}",
                                str(broken_other))  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str()
    document = json.loads(results.read_text())
    assert document["passed"] is False
    assert [o["reason"] for o in document["outcomes"]] == ["could not run: unexpected KeyError: 'missing-key'"] * 2


def test_the_sweep_task_records_the_same_outcome(pytester: pytest.Pytester, broken_other: Path) -> None:
    """harness.sweep.task writes the plugin's document (less its time stamp) and reports the task as an error,
    with no stamp, so that a rerun tries it again."""
    from harness.files import sha256_file
    from harness.reports.results_schema import load_results_file
    from harness.sweep.plan import is_finished, plan_sweep
    from harness.sweep.task import gate_checkpoint

    candidate = broken_other.parent / "a.model"
    plugin = pytester.path / "plugin.json"
    pin = sha256_file(candidate)
    result = pytester.runpytest("-p", "no:cacheprovider", "--harness-no-cache", f"--harness-results={plugin}",
                                f"--harness-candidate={candidate}", f"--harness-candidate-sha256={pin}",
                                "--harness-label=a", str(broken_other))  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    manifest = pytester.path / "SHA256S.json"
    manifest.write_text(json.dumps({"checkpoints": {str(candidate): pin}}))
    (task,) = plan_sweep(broken_other, [candidate], pytester.path / "sweep", manifest=manifest)
    outcome = gate_checkpoint(task)
    assert outcome.status == "error" and outcome.failed_checks == ("accuracy[other]",)
    assert outcome.error is not None and "\n" not in outcome.error
    assert outcome.error.startswith("check 'accuracy' on model 'other' could not run: checkpoint ")
    assert "torch.load failed" in outcome.error and str(task.output) in outcome.error
    assert not is_finished(task)  # no stamp: a rerun gates it again
    expected, got = load_results_file(plugin), load_results_file(task.output)
    expected.pop("created"), got.pop("created")
    assert got["passed"] is False
    assert got["outcomes"] == expected["outcomes"]
    assert got["checkpoint"] == {"label": "a"}  # the sweep labels a document by its checkpoint's name
    assert got == expected
