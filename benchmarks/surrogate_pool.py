"""When does a process pool pay for the surrogate's cross-validation folds? (issue 17)

    python -m benchmarks.surrogate_pool --out DIR [--sizes 12x20x2 60x200x8 ...] [--jobs 2]

``harness.explain.surrogate.ErrorSurrogate`` fits k CV folds and a refit: k + 1 independent,
seeded gradient-boosting fits. Run in a process pool they finish in about
1/workers of the time, but each cold pool first starts its workers (a fresh
interpreter that imports numpy and scikit-learn). For each size (structures x
trees x depth; features: the paper's 390 SOAP columns of the shipped reference
structures, target: the per-atom reference energy residual after a composition
fit, as in ``benchmarks.soap_shap``) this times, each in a fresh process (a cold
pool, as in a gate run), the fits in process (``n_jobs=1``) and in ``--jobs``
workers, and checks that both give the same CV R^2 and SHAP values bit for bit.
Prints one line per run and writes ``surrogate_pool.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _size(text: str) -> tuple[int, int, int]:
    rows, trees, depth = (int(v) for v in text.split("x"))
    return rows, trees, depth


def _matrix(out: Path, rows: int) -> Path:
    """The SOAP matrix and target of the first ``rows`` reference structures, saved once."""
    path = out / f"xy-{rows}.npz"
    if not path.exists():
        from benchmarks.data import energy_residual_per_atom, frames
        from harness.explain.descriptors import soap_features
        from harness.suite.schema import Soap

        structures = frames(rows, n_atoms=None)
        x = soap_features(structures, Soap(species=["Cr", "Sb", "Te"]))
        np.savez(path, x=x, y=energy_residual_per_atom(structures))
    return path


def _one(path: Path, trees: int, depth: int, jobs: int) -> dict[str, Any]:
    """Fit once in this (fresh) process; seconds, the mode the surrogate chose and a digest of its results."""
    from harness.explain.surrogate import ErrorSurrogate
    from harness.suite.schema import Surrogate

    data = np.load(path)
    x, y = data["x"], data["y"]
    names = [f"f{i}" for i in range(x.shape[1])]
    surrogate = ErrorSurrogate(Surrogate(n_estimators=trees, max_depth=depth), n_jobs=jobs)
    start = time.perf_counter()
    surrogate.fit(x, y, names)
    seconds = time.perf_counter() - start
    digest = hashlib.sha256(surrogate.cv_r2_folds_.tobytes() + surrogate.shap_values_.tobytes()).hexdigest()
    return dict(rows=x.shape[0], features=x.shape[1], trees=trees, depth=depth, jobs=jobs, seconds=seconds,
                cv_r2=surrogate.cv_r2_, digest=digest[:16])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=_size,
                        default=[_size(s) for s in ("12x20x2", "60x200x8", "120x200x8", "300x200x8")])
    parser.add_argument("--jobs", type=int, default=2, help="pool workers to compare with one in-process fit")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--one", nargs=4, metavar=("NPZ", "TREES", "DEPTH", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_one(Path(args.one[0]), *(int(v) for v in args.one[1:]))))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for rows, trees, depth in args.sizes:
        path = _matrix(args.out, rows)
        runs = {}
        for jobs in (1, args.jobs):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "benchmarks.surrogate_pool", "--out", str(args.out),
                                   "--one", str(path), str(trees), str(depth), str(jobs)],
                                  capture_output=True, text=True, check=True)
            runs[jobs] = json.loads(proc.stdout.strip().splitlines()[-1]) | {"process_s": time.perf_counter() - start}
            results.append(runs[jobs])
            print(json.dumps(runs[jobs]), flush=True)
        if runs[1]["digest"] != runs[args.jobs]["digest"]:
            raise SystemExit(f"{rows}x{trees}x{depth}: in-process and pooled fits differ")
        (args.out / "surrogate_pool.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
