"""asv benchmarks: throughput of the ``attribution_faithfulness`` perturbation (issue #10).

``track_perturbation`` is structures per second (higher is better) of the check's
model work: for every structure, the ``1 + 2 * k_max * draws`` perturbed copies
(top-k atoms in Grad-CAM order and random atoms, each displaced by ``amplitude_A``)
evaluated as extra graphs of one batch (``harness.explain.faithfulness.perturbation_energies``
with ``MaceModel.energies``): exactly what the check runs, minus the
bootstrap. Graphs per second, comparable with ``track_fused``, are ``COPIES`` (41)
times the value. Next to ``benchmark_attribution.py`` (whose devices, dtypes and
timing it shares); CUDA is added to ``device`` where available, with more
structures per call.

    asv run --python=same --quick --show-stderr --bench Perturbation
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import throughput
from .benchmark_attribution import DEVICES, DTYPES, TIMING, UNIT
from .data import MODELS, frames, make_model

# The check's defaults (harness.suite.sanity_kinds.AttributionFaithfulnessCheck): k_max 5, draws 4.
K_MAX, DRAWS, AMPLITUDE_A = 5, 4, 0.1
COPIES = 1 + 2 * K_MAX * DRAWS
N_STRUCTURES = {"cpu": 2, "cuda": 32}
STRUCTURES_PER_CALL = {"cpu": 1, "cuda": 8}  # 41 or 328 graphs of 120 atoms per model call


class Perturbation:
    """The perturbation energies of ``attribution_faithfulness`` over device, dtype and model."""

    params = (DEVICES, DTYPES, list(MODELS))
    param_names = ["device", "dtype", "model"]
    timeout = 900
    number = 1
    repeat = 1

    def setup_cache(self) -> list:
        return frames(max(N_STRUCTURES[d] for d in DEVICES))

    def setup(self, structures: list, device: str, dtype: str, model: str) -> None:

        torch.set_num_threads(1)  # stable CPU timings on a shared host
        self.device = device
        self.model = make_model(model, dtype, device)
        self.structures = structures[: N_STRUCTURES[device]]
        # scores only order the atoms; a fixed ranking keeps set-up cheap and the work identical
        self.scores = [np.arange(len(a), dtype=float)[::-1] for a in self.structures]
        self.energy_fn = self.model.energies

    def _run(self) -> None:
        from harness.explain.faithfulness import perturbation_energies

        perturbation_energies(
            self.energy_fn, self.structures, self.scores, k_max=K_MAX, draws=DRAWS,
            amplitude_A=AMPLITUDE_A, seed=0, structures_per_call=STRUCTURES_PER_CALL[self.device],
        )

    def track_perturbation(self, *_: Any) -> float:
        timing = throughput.rate(self._run, len(self.structures), self.device, **TIMING[self.device])
        return timing.best_per_second

    track_perturbation.unit = UNIT  # type: ignore[attr-defined]
