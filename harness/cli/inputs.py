"""Input checks shared by every `mlff-harness` command: one line naming the file and the problem.

Every command reads its files through these functions, so a missing file, a
directory, an empty or truncated file, unreadable bytes, JSON that is not
JSON (or holds NaN/Infinity), a wrong format tag or a schema violation is an
:class:`InputError` (exit 2) with the same wording everywhere. Suites go
through :func:`harness.suite.loader.load_suite`, results documents through
:func:`harness.reports.results_schema.validate_results`: one schema per kind of file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from harness.errors import DataError, HarnessError

RESULTS_FORMAT = "mlff-harness-results/1"
MAX_INPUT_BYTES = 256 * 1024 * 1024  # a results document or suite larger than this is refused unread


class InputError(DataError):
    """A command-line input is missing, unreadable or malformed (exit 2)."""


class _DeprecatedOut(argparse.Action):
    """``--out FILE``: the old spelling of ``-o/--output`` (hidden; one warning on stderr)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"mlff-harness: warning: {option_string} is deprecated; use -o/--output", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_output(parser: argparse.ArgumentParser, help: str, required: bool = False, **kwargs: Any) -> None:
    """``-o/--output`` as every command that writes a file spells it, and the hidden old ``--out``."""
    where: Any = parser.add_mutually_exclusive_group(required=True) if required else parser
    where.add_argument("-o", "--output", help=help, **kwargs)
    where.add_argument("--out", dest="output", action=_DeprecatedOut, help=argparse.SUPPRESS)


def one_line(error: BaseException | str) -> str:
    """The message of an error on one line."""
    return " ".join(str(error).split())


def fail(error: BaseException | str) -> int:
    """Report bad input as every command does: one line on stderr; the exit code 2."""
    import sys

    text = one_line(error)
    print(text if text.startswith("mlff-harness") else f"mlff-harness: {text}", file=sys.stderr)
    return 2


def input_file(path: str | Path, what: str) -> Path:
    """``path`` if it names a readable, non-empty regular file; else an InputError naming it."""
    path = Path(path)
    try:
        status = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except NotADirectoryError:
        raise InputError(f"{path}: {what} not found (a parent of it is a file, not a folder)") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    if path.is_dir():
        raise InputError(f"{path}: the {what} is a directory, not a file")
    if not path.is_file():
        raise InputError(f"{path}: the {what} is not a regular file")
    if status.st_size == 0:
        raise InputError(f"{path}: the {what} is empty")
    if status.st_size > MAX_INPUT_BYTES:
        raise InputError(f"{path}: the {what} is {status.st_size} bytes, more than the {MAX_INPUT_BYTES} allowed")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot read the {what} (permission denied)")
    return path


def input_folder(path: str | Path, what: str) -> Path:
    """``path`` if it names a readable folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if not path.is_dir():
        raise InputError(f"{path}: the {what} must be a folder, not a file")
    if not os.access(path, os.R_OK | os.X_OK):
        raise InputError(f"{path}: cannot read the {what} (permission denied)")
    return path


def output_file(path: str | Path, what: str) -> Path:
    """``path`` if a file can be written there (not a folder; its folder is made if missing)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: the {what} is a directory; give a file name")
    parent = path.parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"{path}: cannot write the {what}: {folder} is a file, not a folder")
            if not os.access(folder, os.W_OK):
                raise InputError(f"{path}: cannot write the {what} (no write permission in {folder})")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{path}: cannot make the folder of the {what} ({err.strerror or err})") from None
    return path


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (write null for an undefined value)")


def read_json(path: str | Path, what: str) -> Any:
    """Strict JSON from a checked file: UTF-8, no NaN/Infinity, no number out of float range."""
    path = input_file(path, what)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: the {what} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    if not text.strip():
        raise InputError(f"{path}: the {what} is empty")
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        hint = " (truncated?)" if err.pos >= len(text.rstrip()) else ""
        raise InputError(
            f"{path}: the {what} is not JSON: {err.msg} at line {err.lineno} column {err.colno}{hint}"
        ) from None
    except (ValueError, RecursionError) as err:
        raise InputError(f"{path}: the {what} is not valid JSON: {one_line(err)}") from None


def read_results(path: str | Path) -> dict[str, Any]:
    """A results document: strict JSON, the right format tag, and valid against the results schema."""
    from harness.reports.results_schema import validate_results

    document = read_json(path, "results file")
    if not isinstance(document, dict):
        raise InputError(
            f"{path}: not a valid {RESULTS_FORMAT} document: the top level is a {type(document).__name__}, "
            "not an object"
        )
    tag = document.get("format")
    if tag != RESULTS_FORMAT:
        raise InputError(
            f"{path}: not a valid {RESULTS_FORMAT} document: its format tag is {tag!r} "
            "(write one with pytest --harness-results)"
        )
    try:
        validate_results(document, source=path)
    except HarnessError as err:
        raise InputError(one_line(err)) from None
    except RecursionError:
        raise InputError(f"{path}: the results file is nested too deeply") from None
    problems = consistency_errors(document)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{path}: not a valid {RESULTS_FORMAT} document: {problems[0]}{more}")
    return document


def consistency_errors(document: dict[str, Any]) -> list[str]:
    """Cross-field rules a JSON Schema cannot state: per-atom arrays of one structure agree in length."""
    problems = []
    for i, suite in enumerate(document.get("suites") or []):
        where = f"$.suites[{i}]"
        view = suite.get("structure_view")
        if isinstance(view, dict):
            n = len(view.get("symbols") or [])
            if len(view.get("positions_A") or []) != n:
                problems.append(f"{where}.structure_view: {len(view['positions_A'])} positions for {n} atoms")
            for model, scores in (view.get("scores") or {}).items():
                if len(scores) != n:
                    problems.append(f"{where}.structure_view.scores.{model}: {len(scores)} scores for {n} atoms")
        histogram = suite.get("score_histogram")
        if isinstance(histogram, dict):
            edges, counts = histogram.get("edges") or [], histogram.get("counts") or {}
            for model, row in (counts.items() if isinstance(counts, dict) else [("counts", counts)]):
                if isinstance(row, list) and len(row) != len(edges) - 1:
                    problems.append(f"{where}.score_histogram.{model}: {len(row)} counts for {len(edges) - 1} bins")
    return problems


def read_suite(path: str | Path) -> Any:
    """A validated suite (:class:`harness.suite.loader.LoadedSuite`)."""
    from harness.suite.loader import load_suite

    input_file(path, "suite file")
    try:
        return load_suite(path)
    except RecursionError:
        raise InputError(f"{path}: the suite file is nested too deeply to read") from None
