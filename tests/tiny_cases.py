"""Tiny real cases for undefined metrics and inconclusive surrogates: tiny random MACE checkpoints and real extxyz.

- ``plain.model``: a tiny random MACE (Cr, Sb, Te);
- ``dark.model``: the same with its last readout zeroed, so the last layer's
  features no longer reach the energy and its Grad-CAM is exactly zero;
- structures are written as extxyz with ``REF_energy``/``REF_forces`` made from
  a model's own outputs plus whatever error a test plants.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from planted import random_cells

SPECIES = ["Cr", "Sb", "Te"]


def write_models(root: Path) -> dict[str, str]:
    """plain.model and dark.model in `root`; their sha256 by name."""
    import torch

    from harness.files import sha256_file
    from harness.models.mace.model import save_model
    from harness.models.mace.tiny import build_tiny_mace

    root.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = build_tiny_mace(SPECIES, seed=1, num_channels=8, max_L=0, r_max=4.0)
        dark = build_tiny_mace(SPECIES, seed=1, num_channels=8, max_L=0, r_max=4.0)
        with torch.no_grad():
            for parameter in dark.readouts[-1].parameters():
                parameter.zero_()
        save_model(plain, root / "plain.model")
        save_model(dark, root / "dark.model")
    return {name: sha256_file(root / f"{name}.model") for name in ("plain", "dark")}


def write_structures(
    path: Path,
    structures: list[Atoms],
    model_path: Path,
    *,
    energy_error_eV: Callable[[int, Atoms], float] = lambda i, atoms: 0.0,
    force_noise_eV_per_A: float = 0.01,
    seed: int = 0,
) -> Path:
    """Label `structures` with the model's outputs minus a planted energy error (so model - ref = the error)."""
    from harness.models.mace.model import MaceModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = MaceModel.load(model_path, allow_unpinned=True).evaluate(structures, batch_size=len(structures))
    rng = np.random.default_rng(seed)
    for i, atoms in enumerate(structures):
        atoms.info["REF_energy"] = float(out.energies_eV[i] - energy_error_eV(i, atoms))
        forces = out.forces_eV_per_A[out.offsets[i] : out.offsets[i + 1]]
        atoms.arrays["REF_forces"] = forces + rng.normal(0, force_noise_eV_per_A, forces.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, structures, format="extxyz")
    return path


def cells(n: int, *, seed: int, with_cr: bool = True) -> list[Atoms]:
    """Random 12-atom Sb/Te cells, one Cr each when `with_cr`."""
    return random_cells(n, seed=seed, n_cr=1 if with_cr else 0)


def run_cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """`python -m <args>` in `cwd`, as a user would run it."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)
