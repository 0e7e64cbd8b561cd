"""Pair-resolved force errors: how much too attractive or repulsive a model makes A-B pairs at each distance.

For every A-B pair (i, j) at distance r (periodic images included) the
central force error is

    c_ij = 1/2 (dF_i - dF_j) . r_ij / r,     dF = F_model - F_ref,  r_ij = R_j - R_i

If the model's error were a pair potential dphi(r) between A and B, then
dF_i . r_ij/r = dphi'(r) and dF_j . r_ij/r = -dphi'(r), so c_ij = dphi'(r)
exactly, plus what the atoms' other neighbours add (which averages out over
many pairs of varied environments). The mean of c over the pairs of one
distance shell is therefore an estimate of the model's pair-force error there:
c > 0, the model pulls the pair together more than the reference (too
attractive); c < 0, too repulsive. No surrogate is involved: it reads the
force errors the reference data really has, by species pair and distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _ATOMIC_NUMBERS

from harness.errors import DataError


@dataclass(frozen=True)
class ShellBias:
    """Mean central force error (eV/A) of one pair class in one distance shell."""

    lo_A: float
    hi_A: float
    n_pairs: int
    mean_eV_per_A: float


def central_force_errors(
    structures: Sequence[Atoms], force_errors: np.ndarray, pair: tuple[str, str], r_max_A: float
) -> tuple[np.ndarray, np.ndarray]:
    """(distances (P,), central force errors (P,) eV/A) of every A-B pair within r_max_A, each pair once."""
    from harness.models.neighbours import neighbour_list  # vesin where installed: ~10x ASE's list

    za, zb = _ATOMIC_NUMBERS[pair[0]], _ATOMIC_NUMBERS[pair[1]]
    total = sum(len(a) for a in structures)
    if force_errors.shape != (total, 3):
        raise DataError(f"force errors of shape {force_errors.shape} for {len(structures)} structures of {total} atoms")
    distances, errors = [], []
    start = 0
    for atoms in structures:
        df = force_errors[start : start + len(atoms)]
        start += len(atoms)
        z = atoms.numbers
        if not ((z == za).any() and (z == zb).any()):
            continue
        edges = neighbour_list(atoms.positions, atoms.cell.array, atoms.pbc, r_max_A)
        i, j = edges.edge_index
        vec = atoms.positions[j] - atoms.positions[i] + edges.shifts
        d = np.linalg.norm(vec, axis=1)
        # each unordered pair once: A centre and B neighbour (for A == B both directions give the same c)
        keep = (z[i] == za) & (z[j] == zb)
        if za == zb:
            keep &= (i < j) | ((i == j) & _first_half(vec))
        i, j, d, vec = i[keep], j[keep], d[keep], vec[keep]
        distances.append(d)
        errors.append(0.5 * np.einsum("pk,pk->p", df[i] - df[j], vec / d[:, None]))
    if not distances:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(distances), np.concatenate(errors)


def _first_half(vec: np.ndarray) -> np.ndarray:
    """One of each pair of opposite image vectors (an atom and its own images)."""
    key = np.round(vec, 8)
    return (key[:, 0] > 0) | ((key[:, 0] == 0) & ((key[:, 1] > 0) | ((key[:, 1] == 0) & (key[:, 2] > 0))))


def shell_profile(
    distances: np.ndarray, errors: np.ndarray, edges_A: np.ndarray, *, min_pairs: int = 10
) -> list[ShellBias]:
    """Mean central force error per shell; shells with fewer than ``min_pairs`` pairs are left out."""
    out = []
    for lo, hi in zip(edges_A[:-1], edges_A[1:], strict=True):
        inside = (distances >= lo) & (distances < hi)
        count = int(inside.sum())
        if count >= min_pairs:
            out.append(ShellBias(float(lo), float(hi), count, float(errors[inside].mean())))
    return out
