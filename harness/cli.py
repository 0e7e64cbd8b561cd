"""The `mlff-harness` command: schema export and running suites."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _schema(args: argparse.Namespace) -> int:
    from harness.schema import json_schema

    if args.results:
        from harness.results_schema import results_json_schema

        text = json.dumps(results_json_schema(), indent=2, sort_keys=True)
    else:
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
            RunOptions(
                device=args.device,
                dtype=args.dtype,
                cache_dir=Path(args.cache) if args.cache else None,
                allow_unpinned=False,
            ),
        )
        document = measure_models(run, top_n=args.top_n)
    except HarnessError as err:
        print(f"mlff-harness: {err}", file=sys.stderr)
        return 2
    if args.out:
        write_json(Path(args.out), document)
    if args.markdown:
        from harness.paper_tables import analysis_markdown

        specs = {"candidate": run.suite.models.candidate, **run.suite.models.compare_with}
        labels = {name: specs[name].description or name for name in document["models"]}
        Path(args.markdown).write_text(analysis_markdown(document, labels=labels) + "\n", encoding="utf-8")
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


def _convert(args: argparse.Namespace) -> int:
    from harness.convert import convert_checkpoint, read_structures
    from harness.errors import HarnessError

    try:
        structures = read_structures(args.structures, args.n_structures) if args.structures else None
        report = convert_checkpoint(
            args.source,
            args.output,
            expected_sha256=args.sha256,
            allow_unpinned=args.allow_unpinned,
            structures=structures,
            tolerance=args.tolerance,
        )
    except HarnessError as err:
        print(f"mlff-harness: {err}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 0


def _report(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.html_report import write_html
    from harness.results_schema import load_results_file

    try:
        path = write_html(args.output, load_results_file(args.results))
    except HarnessError as err:
        print(f"mlff-harness: {err}", file=sys.stderr)
        return 2
    print(f"report written to {path}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.history import format_history, load_history, metric_series, write_history_plots

    try:
        history = load_history(args.directory)
        series = metric_series(history)
        for warning in history.warnings:
            print(f"mlff-harness: warning: {warning}", file=sys.stderr)
        print(f"{len(history.checkpoints)} checkpoints, ordered by {history.ordered_by}")
        print(format_history(history, series))
        if args.output:
            print(f"plots written to {write_history_plots(args.output, history, series)}")
    except HarnessError as err:
        print(f"mlff-harness: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlff-harness", description="Release gates for machine-learned force fields.")
    sub = parser.add_subparsers(dest="command", required=True)
    schema = sub.add_parser("schema", help="print the JSON Schema of suite files")
    schema.add_argument("-o", "--output", help="write to a file instead of stdout")
    schema.add_argument("--results", action="store_true", help="the schema of results files instead of suites")
    report = sub.add_parser("report", help="render a results file (--harness-results) as a self-contained HTML report")
    report.add_argument("results", help="results JSON file")
    report.add_argument("-o", "--output", required=True, help="HTML file to write")
    history = sub.add_parser("history", help="metrics over the checkpoints of a training run (a folder of results)")
    history.add_argument("directory", help="folder of results JSON files, one per checkpoint")
    history.add_argument("-o", "--output", help="also draw the curves: a .png grid or an .html page")
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
    measure.add_argument(
        "--markdown", metavar="FILE", help="also write the paper's comparisons as markdown tables (harness.paper_tables)"
    )
    measure.add_argument(
        "--dtype", choices=["float32", "float64"], help="model precision (default: the suite's settings)"
    )
    convert = sub.add_parser(
        "convert",
        help="convert a pickled MACE checkpoint to the safe format (safetensors + architecture JSON), verified",
    )
    convert.add_argument("source", help="pickled checkpoint (.model or .model.gz)")
    convert.add_argument("output", help="safe checkpoint to write (.safetensors)")
    pin = convert.add_mutually_exclusive_group(required=True)
    pin.add_argument("--sha256", help="sha256 pin of the source; checked before unpickling")
    pin.add_argument("--allow-unpinned", action="store_true", help="unpickle the source without a pin")
    convert.add_argument("--structures", help="structures to verify on (extxyz); default: synthetic cells")
    convert.add_argument("--n-structures", type=int, default=5, help="how many of --structures to use")
    convert.add_argument("--tolerance", type=float, default=1e-9, help="max |difference| allowed, relative to the largest |value| of each quantity")
    from harness.sweep import add_arguments as sweep_arguments  # light: Dask is imported only when a sweep runs

    sweep_arguments(sub.add_parser("sweep", help="gate many checkpoints with one suite on Dask, then show their history"))
    args, extra = parser.parse_known_args(argv)
    if args.command != "run" and extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    if args.command == "schema":
        return _schema(args)
    if args.command == "validate":
        return _validate(args)
    if args.command == "report":
        return _report(args)
    if args.command == "history":
        return _history(args)
    if args.command == "convert":
        return _convert(args)
    if args.command == "sweep":
        from harness.sweep import main as sweep

        return sweep(args)
    if args.command == "measure":
        return _measure(args)
    if args.command == "compare":
        if len(args.results) < 2:
            parser.error("compare needs at least two results files")
        return _compare(args)
    return _run(args, extra)


if __name__ == "__main__":
    raise SystemExit(main())
