"""asv benchmarks: attribution throughput, structures per second (higher is better).

(a) ``track_mace``: MACE's own batched energies + forces; (b) ``track_fused``: ours,
energies + forces + Grad-CAM in one forward and one backward; (c) ``Loop.track_loop``:
(b) one structure at a time; (d) ``track_pipeline``: ours from ``ase.Atoms`` with graph
building overlapped. 120-atom Cr:Sb2Te3 frames; small and medium tiny random MACE
models and the shipped checkpoint. CUDA is added to the ``device`` parameter where
available, with larger batches and more structures. The timing code is
``benchmarks/throughput.py`` (shared with ``benchmarks/gpu_run.sh``).

    asv run --python=same --quick --show-stderr      (or: asv dev)
"""

from __future__ import annotations

from typing import Any

import torch

from . import throughput
from .data import MODELS, frames, make_model

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", "cuda"] if CUDA else ["cpu"]
DTYPES = ["float32", "float64"]
BATCH_SIZES = [4, 16, 64] if CUDA else [2, 4]
N_STRUCTURES = {"cpu": 4, "cuda": 128}
N_FRAMES = max(N_STRUCTURES.values()) if CUDA else N_STRUCTURES["cpu"]
# On CPU a pass over 4 frames takes seconds: one timed repeat after the warm-up.
TIMING = {"cpu": dict(min_seconds=0.0, min_repeats=1), "cuda": dict(min_seconds=1.0, min_repeats=3)}
UNIT = "structures/s"


def _frames() -> list:
    return frames(N_FRAMES)


class Throughput:
    """(a), (b) and (d) over device, dtype, batch size and model."""

    params = (DEVICES, DTYPES, BATCH_SIZES, list(MODELS))
    param_names = ["device", "dtype", "batch_size", "model"]
    timeout = 900
    number = 1
    repeat = 1

    def setup_cache(self) -> list:
        return _frames()  # reading extxyz.gz is the slow part: once per run

    def setup(self, structures: list, device: str, dtype: str, batch_size: int, model: str) -> None:
        torch.set_num_threads(1)  # stable CPU timings on a shared host
        self.device = device
        self.model = make_model(model, dtype, device)
        self.work = throughput.Workload(self.model, structures[: N_STRUCTURES[device]], batch_size)

    def _rate(self, fn: Any) -> float:
        return throughput.rate(fn, len(self.work.structures), self.device, **TIMING[self.device]).best_per_second

    def track_mace(self, *_: Any) -> float:
        return self._rate(self.work.run_mace)

    def track_fused(self, *_: Any) -> float:
        return self._rate(self.work.run_fused)

    def track_pipeline(self, *_: Any) -> float:
        return self._rate(self.work.run_pipeline)

    def track_peak_memory_fused(self, *_: Any) -> float:
        peak = throughput.peak_mib(self.model.device, self.work.run_fused)
        return float("nan") if peak is None else peak

    track_mace.unit = UNIT  # type: ignore[attr-defined]
    track_fused.unit = UNIT  # type: ignore[attr-defined]
    track_pipeline.unit = UNIT  # type: ignore[attr-defined]
    track_peak_memory_fused.unit = "MiB"  # type: ignore[attr-defined]


class Loop:
    """(c) the fused pass one structure at a time (no batch-size parameter)."""

    params = (DEVICES, DTYPES, list(MODELS))
    param_names = ["device", "dtype", "model"]
    timeout = 900
    number = 1
    repeat = 1

    def setup_cache(self) -> list:
        return _frames()

    def setup(self, structures: list, device: str, dtype: str, model: str) -> None:
        torch.set_num_threads(1)
        self.device = device
        n = 2 if device == "cpu" else 32
        self.work = throughput.LoopWorkload(make_model(model, dtype, device), structures[:n])

    def track_loop(self, *_: Any) -> float:
        timing = throughput.rate(self.work.run_loop, len(self.work.structures), self.device, **TIMING[self.device])
        return timing.best_per_second

    track_loop.unit = UNIT  # type: ignore[attr-defined]
