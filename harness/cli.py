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

    return int(pytest.main(["-p", "no:cacheprovider", *args.paths, *extra]) if args.no_cache_provider else pytest.main([*args.paths, *extra]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlff-harness", description="Release gates for machine-learned force fields.")
    sub = parser.add_subparsers(dest="command", required=True)
    schema = sub.add_parser("schema", help="print the JSON Schema of suite files")
    schema.add_argument("-o", "--output", help="write to a file instead of stdout")
    validate = sub.add_parser("validate", help="check suite files without running them")
    validate.add_argument("suites", nargs="+")
    run = sub.add_parser("run", help="run suites with pytest (other options are passed to pytest)")
    run.add_argument("paths", nargs="+")
    run.add_argument("--no-cache-provider", action="store_true", help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args(argv)
    if args.command != "run" and extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    if args.command == "schema":
        return _schema(args)
    if args.command == "validate":
        return _validate(args)
    return _run(args, extra)


if __name__ == "__main__":
    raise SystemExit(main())
