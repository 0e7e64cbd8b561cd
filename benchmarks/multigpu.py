"""Multi-GPU timing: the multi-checkpoint suite with pytest-xdist, 1 worker vs one per GPU.

    python -m benchmarks.multigpu --out DIR

Writes ``multigpu.json``: wall time of ``pytest -n 1`` and ``pytest -n G`` (start-up
included) and the makespan of the items (first item start to last item end), and
their ratios. Needs >1 CUDA device and pytest-xdist; otherwise it records why not.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = Path(__file__).resolve().parent / "multigpu_suite"


def run_suite(workers: int, structures: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as log:
        env = dict(env, MLFF_MULTIGPU_LOG=log.name, MLFF_MULTIGPU_STRUCTURES=str(structures))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers),
                               str(SUITE)], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        items = [json.loads(line) for line in Path(log.name).read_text().splitlines() if line.strip()]
    if proc.returncode != 0:
        raise RuntimeError(f"pytest -n {workers} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    makespan = max(i["end"] for i in items) - min(i["start"] for i in items)
    return dict(workers=workers, wall_s=wall, makespan_s=makespan, items=len(items),
                devices=sorted({i["device"] for i in items}))


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--structures", type=int, default=512)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    result: dict[str, object] = dict(gpus=gpus)
    if gpus < 2:
        result["skipped"] = f"needs >1 GPU, found {gpus}"
    elif importlib.util.find_spec("pytest") is None or importlib.util.find_spec("xdist") is None:
        result["skipped"] = "pytest and pytest-xdist are needed (pip install pytest-xdist)"
    else:
        from benchmarks.data import frames

        frames(args.structures)  # fill the frame cache once, outside the timings
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SUITE.parents[1]), os.environ.get("PYTHONPATH", "")]))
        one = run_suite(1, args.structures, env)
        many = run_suite(gpus, args.structures, env)
        result.update(one_worker=one, one_per_gpu=many, speedup_wall=one["wall_s"] / many["wall_s"],
                      speedup_makespan=one["makespan_s"] / many["makespan_s"])
    (args.out / "multigpu.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
