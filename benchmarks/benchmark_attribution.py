"""asv benchmarks: attribution throughput (structures per second).

Runs on CPU anywhere, and on CUDA when available. Compares the harness's fused
pass (energies + forces + Grad-CAM from one forward and one backward) with
MACE's own energies and forces, and with a per-structure loop.
Run: asv run --environment existing --quick   (or: asv dev)
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _structures(n: int):
    from ase import Atoms

    base = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]])
    out = []
    for i in range(n):
        atoms = Atoms(["Cr"] + ["Sb"] * 3 + ["Te"] * 4, scaled_positions=base, cell=np.eye(3) * 6.1, pbc=True)
        atoms = atoms.repeat((2, 2, 2))  # 64 atoms
        atoms.rattle(0.05, seed=i)
        out.append(atoms)
    return out


class Attribution:
    """Structures per second of fused energies+forces+Grad-CAM vs MACE's own pass."""

    params = ([8, 32], ["float32", "float64"])
    param_names = ["batch_size", "dtype"]
    timeout = 300

    def setup(self, batch_size: int, dtype: str) -> None:
        from harness.mace_adapter import MaceModel, build_tiny_mace

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = build_tiny_mace(["Cr", "Sb", "Te"], num_channels=32, max_L=1, r_max=6.0, dtype=dtype)
            self.model = MaceModel.from_module(module, name="bench", dtype=dtype, device=_device())
        self.structures = _structures(64)
        self.model.evaluate(self.structures[:batch_size], batch_size=batch_size)  # warm-up

    def _rate(self, fn) -> float:
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return len(self.structures) / (time.perf_counter() - start)

    def track_fused_structures_per_second(self, batch_size: int, dtype: str) -> float:
        return self._rate(lambda: self.model.evaluate(self.structures, batch_size=batch_size))

    track_fused_structures_per_second.unit = "structures/s"

    def track_mace_energy_forces_structures_per_second(self, batch_size: int, dtype: str) -> float:
        def run() -> None:
            for i in range(0, len(self.structures), batch_size):
                batch = self.model.collate(self.structures[i : i + batch_size])
                self.model.module(batch, compute_force=True, training=False)

        return self._rate(run)

    track_mace_energy_forces_structures_per_second.unit = "structures/s"

    def track_per_structure_loop_structures_per_second(self, batch_size: int, dtype: str) -> float:
        return self._rate(lambda: [self.model.evaluate([s], batch_size=1) for s in self.structures])

    track_per_structure_loop_structures_per_second.unit = "structures/s"
