"""asv benchmark: the shipped main job (`pytest suites/cr_sb2te3`), cold, per stage, in seconds.

``setup_cache`` runs the main job once in a fresh process with no cache
(``--harness-no-cache``: everything computed, as in a clean CI checkout) and
``--harness-profile-json``; every ``track_*`` reports one stage of that run
(``harness.profile``: exclusive seconds), ``track_wall`` the whole process
(imports, collection and pytest included), ``track_warm_wall`` a second run
on a filled cache. Device: ``MLFF_BENCH_DEVICE`` (default ``cuda`` when torch
sees a GPU, else ``cpu``); precision: ``MLFF_BENCH_DTYPE`` (default: the
suites' float64). About 5 minutes on 2 CPU cores.

    asv run --python=same --bench benchmark_gate
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "suites" / "cr_sb2te3"
STAGES = ("read", "load", "graphs", "model", "SOAP", "surrogate", "SHAP", "checks", "report")


def _device() -> str:
    wanted = os.environ.get("MLFF_BENCH_DEVICE")
    if wanted:
        return wanted
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_main_job(cache: Path | None, out: Path) -> dict[str, Any]:
    """One `pytest suites/cr_sb2te3` in a new process; its stage profile and wall seconds."""
    profile = out / f"profile-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "pytest", str(SUITES), "-p", "no:cacheprovider", "-q",
               f"--harness-device={_device()}", f"--harness-profile-json={profile}", f"--harness-results={out / 'results.json'}"]
    command.append(f"--harness-cache={cache}" if cache is not None else "--harness-no-cache")
    if os.environ.get("MLFF_BENCH_DTYPE"):
        command.append(f"--harness-dtype={os.environ['MLFF_BENCH_DTYPE']}")
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1500)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the main job failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    document = json.loads(profile.read_text())
    return {"stages": document["stages_s"], "wall": wall}


class GateStages:
    timeout = 1800
    number = 1
    repeat = 1

    def setup_cache(self) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            cold = run_main_job(None, Path(tmp))
            cache = Path(tmp) / "cache"
            run_main_job(cache, Path(tmp))  # fills the cache
            warm = run_main_job(cache, Path(tmp))
        return {"cold": cold, "warm": warm}

    def track_wall(self, result: dict[str, Any]) -> float:
        return float(result["cold"]["wall"])

    def track_warm_wall(self, result: dict[str, Any]) -> float:
        return float(result["warm"]["wall"])

    track_wall.unit = "seconds"  # type: ignore[attr-defined]
    track_warm_wall.unit = "seconds"  # type: ignore[attr-defined]


def _stage_tracker(stage: str) -> Any:
    def track(self: GateStages, result: dict[str, Any]) -> float:
        return float(result["cold"]["stages"].get(stage, 0.0))

    track.unit = "seconds"  # type: ignore[attr-defined]
    track.__name__ = f"track_{stage.lower()}"
    track.__doc__ = f"Seconds of the cold main job in the {stage!r} stage (harness.profile)."
    return track


for _stage in STAGES:
    setattr(GateStages, f"track_{_stage.lower()}", _stage_tracker(_stage))
del _stage
