"""`mlff-harness init` and `calibrate`: the command-line side of starting a gate for your own system.

The work is in :mod:`harness.own_system.init_suite` and :mod:`harness.own_system.calibrate`; exit
codes as every command: 0 ok, 1 calibration refused, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.cache import add_cache
from harness.cli.inputs import fail


def run(args: argparse.Namespace) -> int:
    return _init(args) if args.command == "init" else _calibrate(args)


def _init(args: argparse.Namespace) -> int:
    from harness.cli.inputs import input_file
    from harness.errors import HarnessError
    from harness.own_system.init_suite import init_suite

    try:
        input_file(args.structures, "structures file")
        input_file(args.checkpoint, "checkpoint")
        result = init_suite(
            args.structures,
            args.checkpoint,
            out_dir=args.out,
            name=args.name,
            checkpoint_name=args.checkpoint_name,
            focus=args.focus or (),
            energy_key=args.energy_key,
            forces_key=args.forces_key,
            force=args.force,
            device=args.device,
        )
    except HarnessError as err:
        return fail(err)
    print(
        f"wrote {result.suite_path}: {result.n_structures} structures, labels {result.energy_key}/{result.forces_key}, "
        f"SOAP species {' '.join(result.species)}, focus {' '.join(result.focus) or 'none'}"
    )
    print(
        f"next: mlff-harness calibrate {result.suite_path} --good GOOD.model --must-fail BAD.model --write-suite"
    )
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from harness.cli.inputs import input_file, output_file, read_suite
    from harness.errors import HarnessError
    from harness.own_system.calibrate import calibrate
    from harness.own_system.calibration_report import to_json, to_markdown, write_atomic, write_suite

    try:
        loaded = read_suite(args.suite)
        for path in [*args.good, *args.must_fail]:
            input_file(path, "checkpoint")
        stem = loaded.path.name.removesuffix(".yaml").removesuffix(".suite")
        markdown = Path(args.output) if args.output else loaded.path.with_name(f"{stem}.calibration.md")
        record = markdown.with_suffix(".json")
        output_file(markdown, "calibration table")
        target = None if args.write_suite is False else Path(args.write_suite or loaded.path)
        if target is not None:
            output_file(target, "calibrated suite")
            if target.resolve().parent != loaded.path.parent:
                raise HarnessError(
                    f"{target}: --write-suite must be in the suite's folder {loaded.path.parent} "
                    "(the suite's paths are relative to it)"
                )
        result = calibrate(
            loaded,
            args.good,
            args.must_fail,
            margin=args.margin,
            min_margin=args.min_margin,
            guards=args.guard or (),
            cache_dir=Path(args.cache) if args.cache else None,
            device=args.device,
            dtype=args.dtype,
        )
        write_atomic(markdown, to_markdown(result))
        write_atomic(record, json.dumps(to_json(result), indent=1, allow_nan=False) + "\n")
        if result.problems:
            for problem in result.problems:
                print(f"mlff-harness: calibration refused: {problem}", file=sys.stderr)
            print(f"table written to {markdown} and {record}; no suite written", file=sys.stderr)
            return 1
        if target is not None:
            write_suite(result, loaded, target, record=markdown.name)
    except HarnessError as err:
        return fail(err)
    print(f"calibration accepted: table written to {markdown} and {record}")
    if target is not None:
        print(f"calibrated suite written to {target}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The init and calibrate sub-commands."""
    init = sub.add_parser("init", help="write a first suite for your own structures and checkpoint")
    init.add_argument("--structures", required=True, help="reference structures with energy and force labels (extxyz)")
    init.add_argument("--checkpoint", required=True, help="the MACE checkpoint the gate decides on (the candidate)")
    init.add_argument("--checkpoint-name", help="a description of the checkpoint, shown in reports")
    init.add_argument("--focus", nargs="+", metavar="EL", help="element(s) the model should attend to (e.g. a dopant)")
    init.add_argument("--out", default=".", help="folder to write <name>.suite.yaml in (default: the current folder)")
    init.add_argument("--name", help="the suite's name (default: the structures file's name without extensions)")
    init.add_argument("--energy-key", help="atoms.info key of the total energy, eV (default: detected)")
    init.add_argument("--forces-key", help="atoms.arrays key of the forces, eV/A (default: detected)")
    init.add_argument("--force", action="store_true", help="overwrite an existing suite")
    init.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to load the checkpoint")
    cal = sub.add_parser("calibrate", help="propose every threshold of a suite from good and must-fail models")
    cal.add_argument("suite")
    cal.add_argument(
        "--good", action="append", required=True, metavar="MODEL", help="a model the gate must pass (repeat)"
    )
    cal.add_argument(
        "--must-fail", action="append", required=True, metavar="MODEL", help="a model the gate must fail (repeat)"
    )
    cal.add_argument(
        "--margin", type=float, default=0.2, help="relative widening of the worst good value (default 0.2)"
    )
    cal.add_argument(
        "--min-margin", type=float, default=0.05,
        help="a must-fail value nearer the worst good value than twice this (relative) is too close to count "
        "(default 0.05)",
    )
    cal.add_argument("--guard", action="append", metavar="CHECK", help="keep a check that catches no must-fail model")
    cal.add_argument(
        "-o", "--output",
        help="calibration table, Markdown (default: <suite>.calibration.md beside it; JSON beside that)",
    )
    cal.add_argument(
        "--write-suite", nargs="?", const=None, default=False, metavar="PATH",
        help="write the suite with the proposed thresholds (default PATH: the suite itself)",
    )
    add_cache(cal)  # the folder pytest's --harness-cache defaults to, same keys
    cal.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    cal.add_argument("--dtype", choices=["float32", "float64"], help="model precision (default: the suite's settings)")
