"""The `mlff-harness` command: schema export, suites, results, calibration.

Exit codes, every command: 0 ok; 1 a gate, comparison or calibration failed;
2 bad input (a missing, empty, truncated, unreadable or schema-invalid file, a
wrong format tag, a directory instead of a file), with one line naming the
file and the problem (:mod:`harness.cli.inputs`). A command that writes a file
takes it as ``-o/--output`` (``--out`` is a hidden, deprecated alias); ``--cache``
defaults to the folder pytest's ``--harness-cache`` does (``.harness-cache``),
with the same keys, so either warms the other. Each sub-parser names its
function with ``set_defaults(func=...)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _fail(err: BaseException | str) -> int:
    """Bad input: one line on stderr, exit 2."""
    from harness.cli.inputs import fail

    return fail(err)


def _schema(args: argparse.Namespace) -> int:
    from harness.cli.inputs import output_file
    from harness.errors import HarnessError
    from harness.suite.schema import json_schema

    if args.output:
        try:
            output_file(args.output, "schema file")
        except HarnessError as err:
            return _fail(err)
    if args.results:
        from harness.reports.results_schema import results_json_schema

        text = json.dumps(results_json_schema(), indent=2, sort_keys=True)
    else:
        text = json.dumps(json_schema(), indent=2, sort_keys=True)
    if args.output:
        from harness.files import atomic_write_text

        atomic_write_text(args.output, text + "\n")
    else:
        print(text)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from harness.cli.inputs import one_line, read_suite
    from harness.errors import HarnessError
    from harness.own_system.init_suite import PLACEHOLDER

    status = 0
    for path in args.suites:
        try:
            loaded = read_suite(path)
        except HarnessError as err:
            print(f"INVALID {one_line(err)}", file=sys.stderr)
            status = 2
        else:
            text = loaded.path.read_text(encoding="utf-8")
            placeholders = sum(line.rstrip().endswith(PLACEHOLDER) for line in text.splitlines())
            note = f" ({placeholders} placeholder thresholds: run mlff-harness calibrate)" if placeholders else ""
            print(f"ok      {path}: {len(loaded.suite.checks)} checks{note}")
    return status


def _run(args: argparse.Namespace) -> int:
    """pytest on the paths; its exit codes mapped to ours (2: usage error, nothing collected, interrupted)."""
    from harness.cli.inputs import InputError

    for path in args.paths:
        if not os.path.exists(path):
            return _fail(InputError(f"{path}: no such suite file or folder"))
    import pytest

    code = int(pytest.main([*args.paths, *args.pytest_args]))
    return code if code in (0, 1) else 2


def _sweep(args: argparse.Namespace) -> int:
    """Check the sweep's inputs as every command does, then hand over to harness.sweep.run."""
    from harness.cli.inputs import input_file, input_folder, read_json, read_suite
    from harness.errors import HarnessError
    from harness.sweep.run import main as sweep

    try:
        read_suite(args.suite)
        for path in args.checkpoints:
            input_file(path, "checkpoint")
        if args.manifest:
            read_json(args.manifest, "manifest")
        if os.path.exists(args.output):
            input_folder(args.output, "output folder")
    except HarnessError as err:
        return _fail(err)
    return sweep(args)


def _measure(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.cli.inputs import output_file, read_suite
    from harness.errors import HarnessError
    from harness.gate.session import RunOptions, SuiteRun
    from harness.reports.measure import measure_models
    from harness.reports.report import write_json

    try:
        for name, what in ((args.output, "JSON output"), (args.markdown, "markdown output")):
            if name:
                output_file(name, what)
        run = SuiteRun(
            read_suite(args.suite),
            RunOptions(
                device=args.device,
                dtype=args.dtype,
                cache_dir=Path(args.cache) if args.cache else None,
                allow_unpinned=False,
            ),
        )
        document = measure_models(run, top_n=args.top_n, elements=args.element, atoms=not args.no_atoms)
    except HarnessError as err:
        return _fail(err)
    if args.output:
        write_json(Path(args.output), document)
    if args.markdown:
        from harness.files import atomic_write_text
        from harness.reports.paper_tables import analysis_markdown

        specs = {"candidate": run.suite.models.candidate, **run.suite.models.compare_with}
        labels = {name: specs[name].description or name for name in document["models"]}
        atomic_write_text(args.markdown, analysis_markdown(document, labels=labels) + "\n")
    print(json.dumps(document, indent=1, sort_keys=True, default=str))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.cli.inputs import read_results
    from harness.errors import HarnessError
    from harness.reports.compare import diff_results, format_rows

    if len(args.results) < 2:
        return _fail("mlff-harness: compare needs at least two results files")
    try:
        docs = [read_results(Path(p)) for p in args.results]
    except HarnessError as err:
        return _fail(err)
    status = 0
    named = list(zip(args.results, docs, strict=True))
    for (name_a, a), (name_b, b) in zip(named, named[1:], strict=False):  # consecutive pairs
        rows = diff_results(a, b)
        print(f"{name_a} -> {name_b}")
        print(format_rows(rows, tolerance=args.tolerance))
        if any(r.flipped_to_fail for r in rows):
            status = 1
    return status


def _convert(args: argparse.Namespace) -> int:
    from harness.cli.inputs import input_file, output_file
    from harness.errors import HarnessError
    from harness.models.convert import ConversionMismatch, convert_checkpoint, read_structures

    given = {args.target, args.output} - {None}
    if len(given) != 1:
        return _fail("mlff-harness: convert: give the safe checkpoint to write once (OUTPUT or -o/--output)")
    (target,) = given
    try:
        input_file(args.source, "checkpoint")
        output_file(target, "safe checkpoint")
        if args.structures:
            input_file(args.structures, "structures file")
        structures = read_structures(args.structures, args.n_structures) if args.structures else None
        report = convert_checkpoint(
            args.source,
            target,
            expected_sha256=args.sha256,
            allow_unpinned=args.allow_unpinned,
            structures=structures,
            tolerance=args.tolerance,
        )
    except ConversionMismatch as err:  # the converted model is not the same model: the check failed
        print(f"mlff-harness: {err}", file=sys.stderr)
        return 1
    except HarnessError as err:
        return _fail(err)
    print("\n".join(report.lines()))
    return 0


def _report(args: argparse.Namespace) -> int:
    from harness.cli.inputs import output_file, read_results
    from harness.errors import HarnessError
    from harness.reports.html_report import write_html

    try:
        document = read_results(args.results)
        path = write_html(output_file(args.output, "HTML report"), document)
    except HarnessError as err:
        return _fail(err)
    print(f"report written to {path}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from harness.cli.inputs import input_folder, output_file, read_results
    from harness.errors import HarnessError
    from harness.reports.history import format_history, load_history, metric_series, write_history_plots

    try:
        if args.output:
            output_file(args.output, "plot file")
        folder = input_folder(args.directory, "results folder")
        for path in sorted(folder.glob("*.json")):
            read_results(path)  # each file checked as compare and report check it: one line naming it
        history = load_history(folder)
        series = metric_series(history)
        for warning in history.warnings:
            print(f"mlff-harness: warning: {warning}", file=sys.stderr)
        print(f"{len(history.checkpoints)} checkpoints, ordered by {history.ordered_by}")
        print(format_history(history, series))
        if args.output:
            print(f"plots written to {write_history_plots(args.output, history, series)}")
    except HarnessError as err:
        return _fail(err)
    return 0


def _add_spread(sub: argparse._SubParsersAction) -> None:
    from harness.cache import add_cache
    from harness.cli.inputs import add_output

    spread = sub.add_parser(
        "spread",
        help="how far each gated value of the candidate moves with seeds, precision and device (fragile margins)",
    )
    spread.add_argument("suite", help="a suite file, or a folder of *.suite.yaml files")
    spread.add_argument("--seeds", type=int, default=3, help="seeds to run at the suite's precision (default 3)")
    spread.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    spread.add_argument("--results", nargs="+", default=[], metavar="JSON",
                        help="results files of other runs of the same suites (e.g. GPU, --harness-results)")
    add_cache(spread)
    add_output(spread, "also write the table as JSON", metavar="JSON")
    spread.add_argument("--markdown", metavar="FILE", help="also write the table as markdown")
    spread.set_defaults(func=_spread)


def _spread(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.cli.inputs import output_file, read_results, read_suite
    from harness.errors import HarnessError
    from harness.files import atomic_write_text
    from harness.reports.report import write_json
    from harness.reports.spread import measure_spread, spread_document, spread_markdown

    root = Path(args.suite)
    suites = sorted(root.glob("*.suite.y*ml")) if root.is_dir() else [root]
    if not suites or args.seeds < 1:
        print(f"mlff-harness: spread: {'no *.suite.yaml in ' + str(root) if not suites else '--seeds must be >= 1'}",
              file=sys.stderr)
        return 2
    try:
        for suite in suites:
            read_suite(suite)
        for path in args.results:
            read_results(path)
        for name, what in ((args.output, "JSON output"), (args.markdown, "markdown output")):
            if name:
                output_file(name, what)
        rows = measure_spread(
            suites, seeds=args.seeds, device=args.device, results=[Path(r) for r in args.results],
            cache_dir=Path(args.cache) if args.cache else None, echo=lambda line: print(line, file=sys.stderr),
        )
    except HarnessError as err:
        return _fail(err)
    text = spread_markdown(rows)
    print(text)
    if args.output:
        write_json(Path(args.output), spread_document(rows))
    if args.markdown:
        atomic_write_text(args.markdown, text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every sub-command, each bound to its function with ``set_defaults(func=...)``."""
    from harness.cli.inputs import add_output
    parser = argparse.ArgumentParser(prog="mlff-harness", description="Release gates for machine-learned force fields.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)
    schema = sub.add_parser("schema", help="print the JSON Schema of suite files")
    schema.add_argument("-o", "--output", help="write to a file instead of stdout")
    schema.add_argument("--results", action="store_true", help="the schema of results files instead of suites")
    schema.set_defaults(func=_schema)
    report = sub.add_parser("report", help="render a results file (--harness-results) as a self-contained HTML report")
    report.add_argument("results", help="results JSON file")
    add_output(report, "HTML file to write", required=True)
    report.set_defaults(func=_report)
    history = sub.add_parser("history", help="metrics over the checkpoints of a training run (a folder of results)")
    history.add_argument("directory", help="folder of results JSON files, one per checkpoint")
    add_output(history, "also draw the curves: a .png grid or an .html page")
    history.set_defaults(func=_history)
    validate = sub.add_parser("validate", help="check suite files without running them")
    validate.add_argument("suites", nargs="+")
    validate.set_defaults(func=_validate)
    run = sub.add_parser("run", help="run suites with pytest (other options are passed to pytest)")
    run.add_argument("paths", nargs="+")
    run.set_defaults(func=_run)
    compare = sub.add_parser("compare", help="compare results files; exit 1 if a check flipped from pass to fail")
    compare.add_argument("results", nargs="+", help="results JSON files (--harness-results), oldest first")
    compare.add_argument("--tolerance", type=float, default=0.05, help="relative drift marked in the table")
    compare.set_defaults(func=_compare)
    _add_measure(sub)
    _add_convert(sub)
    from harness.sweep.run import add_arguments as sweep_arguments  # light: Dask is imported only when a sweep runs

    sweep = sub.add_parser("sweep", help="gate many checkpoints with one suite on Dask, then show their history")
    sweep_arguments(sweep)
    sweep.set_defaults(func=_sweep)
    from harness.cli.own_system import add_parsers as add_own_system_parsers
    from harness.cli.own_system import run as run_own_system

    add_own_system_parsers(sub)
    for name in ("init", "calibrate"):
        sub.choices[name].set_defaults(func=run_own_system)
    _add_spread(sub)
    return parser


def _add_measure(sub: argparse._SubParsersAction) -> None:
    from harness.cache import add_cache
    from harness.cli.inputs import add_output

    measure = sub.add_parser("measure", help="measure every metric of every model of a suite (for calibration)")
    measure.add_argument("suite")
    add_output(measure, "also write the JSON to this file")
    measure.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    add_cache(measure)
    measure.add_argument("--top-n", type=int, default=20)
    measure.add_argument(
        "--element", nargs="+", metavar="EL",
        help="focus element(s) for Grad-CAM locus and SHAP shares (default: the suite's focus_elements, "
        "else the elements its checks name, else every element of the data)",
    )
    measure.add_argument(
        "--markdown", metavar="FILE",
        help="also write the paper's comparisons as markdown tables (harness.reports.paper_tables)",
    )
    measure.add_argument(
        "--dtype", choices=["float32", "float64"], help="model precision (default: the suite's settings)"
    )
    measure.add_argument(
        "--no-atoms", action="store_true",
        help="skip the per-atom ranking (one per-atom pair-shell surrogate fit per model; "
        "harness.reports.atom_summary)",
    )
    measure.set_defaults(func=_measure)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    convert = sub.add_parser(
        "convert",
        help="convert a pickled MACE checkpoint to the safe format (safetensors + architecture JSON), verified",
    )
    convert.add_argument("source", help="pickled checkpoint (.model or .model.gz)")
    convert.add_argument("target", nargs="?", metavar="OUTPUT", help="safe checkpoint to write (.safetensors)")
    convert.add_argument("-o", "--output", help="the same, as every command names the file it writes")
    pin = convert.add_mutually_exclusive_group(required=True)
    pin.add_argument("--sha256", help="sha256 pin of the source; checked before unpickling")
    pin.add_argument("--allow-unpinned", action="store_true", help="unpickle the source without a pin")
    convert.add_argument("--structures", help="structures to verify on (extxyz); default: synthetic cells")
    convert.add_argument("--n-structures", type=int, default=5, help="how many of --structures to use")
    convert.add_argument(
        "--tolerance", type=float, default=1e-9,
        help="max |difference| allowed, relative to the largest |value| of each quantity",
    )
    convert.set_defaults(func=_convert)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch to the sub-command's function, map errors to exit codes (0 ok, 1 failed, 2 bad input)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        args.pytest_args = list(extra)
    elif extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    from harness.errors import HarnessError

    try:
        return int(args.func(args))
    except HarnessError as err:  # a command that did not catch its own input error
        return _fail(err)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # noqa: BLE001 - one line instead of a traceback; --debug shows it
        if args.debug:
            raise
        from harness.cli.inputs import one_line

        print(
            f"mlff-harness: internal error in {args.command} ({type(err).__name__}: {one_line(err)}); "
            "this is a bug: rerun with --debug and report the traceback",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
