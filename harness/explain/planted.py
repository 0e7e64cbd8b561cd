"""A planted, exactly known pair term: the known answer of the "what" level.

``phi(r) = eps * exp(-((r - r0) / sigma)^2)`` between every A-B pair (periodic
images included), truncated at ``r0 + 5 sigma`` (phi there is eps * 1.4e-11).
Its energy, per-atom energies and forces are analytic and mutually
consistent (F = -dE/dR, checked by finite differences in the tests), so it can
be added to a reference set's labels or to a model's outputs ("model + term"):
the model's error is then exactly the term, and an explanation method must
name "A-B pairs near r0".

Per-atom energy: each pair's phi split half and half between its two atoms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _ATOMIC_NUMBERS

from harness.errors import CheckError, DataError

_REACH_SIGMAS = 5.0


@dataclass(frozen=True)
class PairTerm:
    """eps * exp(-((r - r0)/sigma)^2) between species ``a`` and ``b`` (eV, angstrom)."""

    a: str
    b: str
    eps_eV: float
    r0_A: float
    sigma_A: float

    def __post_init__(self) -> None:
        for sym in (self.a, self.b):
            if sym not in _ATOMIC_NUMBERS or sym == "X":
                raise CheckError(f"PairTerm names unknown element {sym!r}")
        if not self.r0_A > 0 or not self.sigma_A > 0:
            raise CheckError(f"PairTerm needs r0_A > 0 and sigma_A > 0; got {self.r0_A}, {self.sigma_A}")
        if not np.isfinite(self.eps_eV):
            raise CheckError(f"PairTerm eps_eV={self.eps_eV} is not finite")

    @property
    def cutoff_A(self) -> float:
        return self.r0_A + _REACH_SIGMAS * self.sigma_A

    def phi(self, r: np.ndarray) -> np.ndarray:
        return self.eps_eV * np.exp(-(((r - self.r0_A) / self.sigma_A) ** 2))

    def dphi_dr(self, r: np.ndarray) -> np.ndarray:
        return -2.0 * (r - self.r0_A) / self.sigma_A**2 * self.phi(r)

    def evaluate(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
        """(total energy eV, per-atom energies (n,) eV, forces (n, 3) eV/A) of the term on ``atoms``."""
        from ase.neighborlist import neighbor_list

        n = len(atoms)
        energies = np.zeros(n)
        forces = np.zeros((n, 3))
        za, zb = _ATOMIC_NUMBERS[self.a], _ATOMIC_NUMBERS[self.b]
        z = atoms.numbers
        if not ((z == za).any() and (z == zb).any()):
            return 0.0, energies, forces
        if any(atoms.pbc) and abs(atoms.cell.volume) < 1e-12:
            raise DataError("a periodic structure has a zero-volume cell (fix: set its cell or pbc=False)")
        i, j, d, vec = neighbor_list("ijdD", atoms, self.cutoff_A, self_interaction=False)
        keep = ((z[i] == za) & (z[j] == zb)) | ((z[i] == zb) & (z[j] == za))
        i, j, d, vec = i[keep], j[keep], d[keep], vec[keep]
        # each unordered pair appears twice, (i, j) and (j, i): half of phi to each atom
        np.add.at(energies, i, 0.5 * self.phi(d))
        # F_i = -dE/dR_i = sum_j phi'(r_ij) (R_j - R_i) / r_ij over i's directed pairs
        np.add.at(forces, i, (self.dphi_dr(d) / d)[:, None] * vec)
        return float(np.sum(energies)), energies, forces


def plant_into_labels(
    structures: Sequence[Atoms],
    term: PairTerm,
    *,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    atom_energies_key: str | None = None,
) -> list[Atoms]:
    """Copies of ``structures`` whose labels include ``term``.

    ``energy_key`` (atoms.info, total eV) and ``forces_key`` (atoms.arrays,
    eV/A) must exist and get the term added; with ``atom_energies_key`` the
    term's per-atom energies are added to that atoms.arrays entry (created as
    zeros when absent).
    """
    out = []
    for s, atoms in enumerate(structures):
        if energy_key not in atoms.info:
            raise DataError(f"structure {s} has no atoms.info[{energy_key!r}] to plant into")
        if forces_key not in atoms.arrays:
            raise DataError(f"structure {s} has no atoms.arrays[{forces_key!r}] to plant into")
        energy, per_atom, forces = term.evaluate(atoms)
        copy = atoms.copy()
        copy.info[energy_key] = float(atoms.info[energy_key]) + energy
        copy.arrays[forces_key] = np.asarray(atoms.arrays[forces_key], dtype=np.float64) + forces
        if atom_energies_key is not None:
            base = np.asarray(atoms.arrays.get(atom_energies_key, np.zeros(len(atoms))), dtype=np.float64)
            copy.arrays[atom_energies_key] = base + per_atom
        out.append(copy)
    return out


def plant_into_outputs(
    structures: Sequence[Atoms], energies_eV: np.ndarray, forces_eV_per_A: np.ndarray, term: PairTerm
) -> tuple[np.ndarray, np.ndarray]:
    """A model's (energies (S,), forces (N, 3)) plus ``term``: the outputs of "model + term"."""
    energies = np.asarray(energies_eV, dtype=np.float64).copy()
    forces = np.asarray(forces_eV_per_A, dtype=np.float64).copy()
    n_atoms = [len(a) for a in structures]
    if energies.shape != (len(structures),) or forces.shape != (sum(n_atoms), 3):
        raise DataError(
            f"outputs of shapes {energies.shape}, {forces.shape} do not match "
            f"{len(structures)} structures of {sum(n_atoms)} atoms"
        )
    start = 0
    for s, atoms in enumerate(structures):
        energy, _, f = term.evaluate(atoms)
        energies[s] += energy
        forces[start : start + len(atoms)] += f
        start += len(atoms)
    return energies, forces
