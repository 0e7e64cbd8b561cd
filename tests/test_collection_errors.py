"""No exception, of any type, becomes an INTERNALERROR or a traceback (issue 16, item 1).

pytester runs the plugin in process, so the tests replace the loader (collection)
or ``run_check`` (a check) with one that raises, and read pytest's output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from demo_suite import DEMO, write_placeholders

pytest_plugins = ["pytester"]

ERRORS = [
    RuntimeError("boom in the loader"),
    KeyError("missing-key"),
    TypeError("string indices must be integers"),
    AssertionError("an assert inside a library"),
    RecursionError("maximum recursion depth exceeded"),
    ZeroDivisionError("division by zero"),
]


def _demo(pytester: pytest.Pytester) -> Path:
    write_placeholders(pytester.path)
    path = pytester.path / "demo.suite.yaml"
    path.write_text(DEMO)
    return path


def _raiser(error: BaseException):
    def raise_it(*args: object, **kwargs: object) -> None:
        raise error

    return raise_it


def _assert_no_traceback(text: str) -> None:
    assert "INTERNALERROR" not in text
    assert "Traceback" not in text
    assert "raise error" not in text  # no source lines of the raising frame either


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_unexpected_error_in_collection_is_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    suite = _demo(pytester)
    monkeypatch.setattr("harness.pytest_plugin.items.load_suite", _raiser(error))
    result = pytester.runpytest("-p", "no:cacheprovider", str(suite))
    assert result.ret == pytest.ExitCode.INTERRUPTED  # "1 error during collection"
    text = result.stdout.str()
    _assert_no_traceback(text)
    line = f"mlff-harness: {suite}: could not collect this suite: unexpected {type(error).__name__}: "
    result.stdout.fnmatch_lines([f"{line}*rerun with --harness-debug for the traceback*"])
    result.stdout.fnmatch_lines(["*1 error*"])


@pytest.mark.parametrize("error", ERRORS[:3], ids=lambda e: type(e).__name__)
def test_unexpected_error_in_a_check_fails_that_item(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    suite = _demo(pytester)
    monkeypatch.setattr("harness.pytest_plugin.items.run_check", _raiser(error))
    result = pytester.runpytest("-p", "no:cacheprovider", str(suite))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    _assert_no_traceback(text)
    # the demo's first check, `accuracy`, is on line 7 of the file
    result.stdout.fnmatch_lines(
        [f"{suite}:7: check 'accuracy' on model 'candidate' could not run: unexpected {type(error).__name__}: *"]
    )
    result.assert_outcomes(failed=4)  # every (check, model) item of the demo, each naming its line


def test_harness_debug_and_full_trace_show_the_traceback(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = _demo(pytester)
    monkeypatch.setattr("harness.pytest_plugin.items.load_suite", _raiser(RuntimeError("boom in the loader")))
    for option in ("--harness-debug", "--full-trace"):
        result = pytester.runpytest("-p", "no:cacheprovider", option, str(suite))
        text = result.stdout.str()
        assert result.ret == pytest.ExitCode.INTERRUPTED
        assert "INTERNALERROR" not in text
        assert "raise error" in text  # the raising frame's source
        assert "RuntimeError: boom in the loader" in text


def test_a_suite_error_still_names_file_and_line(pytester: pytest.Pytester) -> None:
    write_placeholders(pytester.path)
    suite = pytester.path / "bad.suite.yaml"
    suite.write_text(DEMO.replace("max: 2.0", "max: two"))
    result = pytester.runpytest("-p", "no:cacheprovider", str(suite))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    _assert_no_traceback(result.stdout.str())
    result.stdout.fnmatch_lines([f"mlff-harness: {suite}:7*"])


def test_unexpected_error_in_the_summary_is_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    suite = _demo(pytester)
    passed = SimpleNamespace(measurements=[], status="pass", passed=True, if_unexplained=None)
    monkeypatch.setattr("harness.pytest_plugin.items.run_check", lambda *args, **kwargs: passed)
    monkeypatch.setattr("harness.pytest_plugin.plugin.summary_table", _raiser(RuntimeError("table broke")))
    result = pytester.runpytest("-p", "no:cacheprovider", str(suite))
    assert result.ret == pytest.ExitCode.OK
    _assert_no_traceback(result.stdout.str())
    result.stdout.fnmatch_lines(
        ["mlff-harness: the summary table could not be made: unexpected RuntimeError: table broke*"]
    )
