"""A tiny MACE with a planted dominant atom, and small random Cr/Sb/Te cells (shared by the issue-10 tests).

The plant: the last product block's element-dependent contraction weights of
Cr are multiplied by PLANT_FACTOR, so the Cr atom's last-layer features, its
site energy and their dependence on its environment dwarf every other atom's
(on these cells: Cr's Grad-CAM ~0.17 vs <= 0.005 for the others).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from ase import Atoms

PLANT_FACTOR = 1e4


def random_cells(
    n: int, seed: int, *, n_atoms: int = 12, box_A: float = 7.0, n_cr: int | tuple[int, int] = 1
) -> list[Atoms]:
    """Periodic cubic cells of random positions (no pair closer than 2.3 A), Sb/Te with `n_cr` Cr atoms."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        positions: list[np.ndarray] = []
        while len(positions) < n_atoms:
            p = rng.uniform(0, box_A, 3)
            if all(np.linalg.norm((p - q + box_A / 2) % box_A - box_A / 2) > 2.3 for q in positions):
                positions.append(p)
        symbols = ["Sb", "Te"] * (n_atoms // 2)
        count = n_cr if isinstance(n_cr, int) else int(rng.integers(n_cr[0], n_cr[1] + 1))
        for index in rng.choice(n_atoms, size=count, replace=False):
            symbols[int(index)] = "Cr"
        out.append(Atoms(symbols, positions=positions, cell=np.eye(3) * box_A, pbc=True))
    return out


def planted_mace(seed: int = 1, factor: float = PLANT_FACTOR) -> torch.nn.Module:
    """A tiny float64 MACE (Cr, Sb, Te; scalar features) whose Cr atom dominates the energy."""
    from harness.models.mace.tiny import build_tiny_mace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = build_tiny_mace(["Cr", "Sb", "Te"], seed=seed, num_channels=8, max_L=0, r_max=4.0)
    contraction = module.products[-1].symmetric_contractions.contractions[0]
    cr = 0  # elements are sorted by atomic number: Cr (24), Sb (51), Te (52)
    with torch.no_grad():
        contraction.weights_max[cr] *= factor
        for weights in contraction.weights:
            weights[cr] *= factor
    return module
