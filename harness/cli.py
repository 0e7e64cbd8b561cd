"""The `mlff-harness` command: schema export and running suites."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _schema(args: argparse.Namespace) -> int:
    from harness.schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    else:
        print(text)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from harness.errors import SuiteError
    from harness.loader import load_suite

    status = 0
    for path in args.suites:
        try:
            loaded = load_suite(path)
        except SuiteError as err:
            print(f"INVALID {err}", file=sys.stderr)
            status = 1
        else:
            print(f"ok      {path}: {len(loaded.suite.checks)} checks")
    return status


def _run(args: argparse.Namespace, extra: Sequence[str]) -> int:
    import pytest

    return int(pytest.main([*args.paths, *extra]))


def _measure(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.compare import measure_models
    from harness.errors import HarnessError
    from harness.loader import load_suite
    from harness.report import write_json
    from harness.session import RunOptions, SuiteRun

    try:
        run = SuiteRun(
            load_suite(args.suite),
            RunOptions(device=args.device, cache_dir=Path(args.cache) if args.cache else None, allow_unpinned=False),
        )
        document = measure_models(run, top_n=args.top_n)
    except HarnessError as err:
        print(f"mlff-harness: {err}", file=sys.stderr)
        return 2
    if args.out:
        write_json(Path(args.out), document)
    print(json.dumps(document, indent=1, sort_keys=True, default=str))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.diff import diff_results, format_rows, load_results
    from harness.errors import HarnessError

    try:
        docs = [load_results(Path(p)) for p in args.results]
    except HarnessError as err:
        print(f"mlff-harness: {err}", file=sys.stderr)
        return 2
    status = 0
    for (name_a, a), (name_b, b) in zip(zip(args.results, docs), zip(args.results[1:], docs[1:])):
        rows = diff_results(a, b)
        print(f"{name_a} -> {name_b}")
        print(format_rows(rows, tolerance=args.tolerance))
        if any(r.flipped_to_fail for r in rows):
            status = 1
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlff-harness", description="Release gates for machine-learned force fields.")
    sub = parser.add_subparsers(dest="command", required=True)
    schema = sub.add_parser("schema", help="print the JSON Schema of suite files")
    schema.add_argument("-o", "--output", help="write to a file instead of stdout")
    validate = sub.add_parser("validate", help="check suite files without running them")
    validate.add_argument("suites", nargs="+")
    run = sub.add_parser("run", help="run suites with pytest (other options are passed to pytest)")
    run.add_argument("paths", nargs="+")
    compare = sub.add_parser("compare", help="compare results files; exit 1 if a check flipped from pass to fail")
    compare.add_argument("results", nargs="+", help="results JSON files (--harness-results), oldest first")
    compare.add_argument("--tolerance", type=float, default=0.05, help="relative drift marked in the table")
    measure = sub.add_parser("measure", help="measure every metric of every model of a suite (for calibration)")
    measure.add_argument("suite")
    measure.add_argument("--out", help="also write the JSON to this file")
    measure.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    measure.add_argument("--cache", default=".harness-cache", help="cache folder ('' for none)")
    measure.add_argument("--top-n", type=int, default=20)
    args, extra = parser.parse_known_args(argv)
    if args.command != "run" and extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    if args.command == "schema":
        return _schema(args)
    if args.command == "validate":
        return _validate(args)
    if args.command == "measure":
        return _measure(args)
    if args.command == "compare":
        if len(args.results) < 2:
            parser.error("compare needs at least two results files")
        return _compare(args)
    return _run(args, extra)


if __name__ == "__main__":
    raise SystemExit(main())
