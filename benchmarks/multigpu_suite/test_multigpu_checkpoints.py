"""A multi-checkpoint "suite" for the multi-GPU timing (run by ``benchmarks/multigpu.py``).

One item per (checkpoint, dtype); under pytest-xdist each worker uses GPU
``worker index % device count``. Each item records its start and end time in
``$MLFF_MULTIGPU_LOG`` so the driver can compute the makespan without start-up.
Not collected by the default ``pytest tests`` run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.data import frames
from harness.models.mace.model import MaceModel
from harness.models.pipeline import Pipeline

CHECKPOINTS = sorted((Path(__file__).resolve().parents[2] / "reference_data" / "checkpoints").glob("*.model.gz"))


def _device() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    return f"cuda:{index % max(1, torch.cuda.device_count())}" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("checkpoint", CHECKPOINTS, ids=lambda p: p.name.split(".")[0])
def test_checkpoint(checkpoint: Path, dtype: str) -> None:
    n = int(os.environ.get("MLFF_MULTIGPU_STRUCTURES", "512"))
    structures = frames(n)
    start = time.time()
    # The repository's own checkpoints (their pins live in the suites); loaded unpinned here.
    model = MaceModel.load(checkpoint, dtype=dtype, device=_device(), allow_unpinned=True)
    outputs, report = Pipeline(model, batch_size=int(os.environ.get("MLFF_MULTIGPU_BATCH", "64"))).run(structures)
    end = time.time()
    assert np.all(np.isfinite(outputs.energies_eV)) and len(outputs.energies_eV) == n
    log = os.environ.get("MLFF_MULTIGPU_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(json.dumps(dict(item=f"{checkpoint.name}-{dtype}", device=str(model.device),
                                         start=start, end=end, per_second=report.structures_per_second)) + "\n")
