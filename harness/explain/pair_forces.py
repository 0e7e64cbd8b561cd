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
    total = sum(len(a) for a in structures)
    if force_errors.shape != (total, 3):
        raise DataError(f"force errors of shape {force_errors.shape} for {len(structures)} structures of {total} atoms")
    return central_errors(pair_geometry(structures, pair, r_max_A), force_errors)


def pair_geometry(structures: Sequence[Atoms], pair: tuple[str, str], r_max_A: float) -> dict[str, np.ndarray]:
    """Every A-B pair within r_max_A, each once: atom indices into the concatenated structures
    ``i`` (A) and ``j`` (B), distance ``d`` and unit vector ``unit`` from i to j (periodic images
    included). Depends on the structures only, so a suite run caches it."""
    from harness.models.neighbours import neighbour_list  # vesin where installed: ~10x ASE's list

    za, zb = _ATOMIC_NUMBERS[pair[0]], _ATOMIC_NUMBERS[pair[1]]
    rows: dict[str, list[np.ndarray]] = {"i": [], "j": [], "d": [], "unit": []}
    start = 0
    for atoms in structures:
        offset, start = start, start + len(atoms)
        z = atoms.numbers
        if not ((z == za).any() and (z == zb).any()):
            continue
        edges = neighbour_list(atoms.positions, atoms.cell.array, atoms.pbc, r_max_A)
        i, j = edges.edge_index
        vec = atoms.positions[j] - atoms.positions[i] + edges.shifts
        # each unordered pair once: A centre and B neighbour (for A == B both directions give the same c)
        keep = (z[i] == za) & (z[j] == zb)
        if za == zb:
            keep &= (i < j) | ((i == j) & _first_half(vec))
        i, j, vec = i[keep], j[keep], vec[keep]
        d = np.linalg.norm(vec, axis=1)
        rows["i"].append(i + offset)
        rows["j"].append(j + offset)
        rows["d"].append(d)
        rows["unit"].append(vec / d[:, None])
    if not rows["d"]:
        return {"i": np.zeros(0, dtype=np.int64), "j": np.zeros(0, dtype=np.int64), "d": np.zeros(0),
                "unit": np.zeros((0, 3))}
    return {key: np.concatenate(parts) for key, parts in rows.items()}


def central_errors(geometry: dict[str, np.ndarray], force_errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distances, central force errors 1/2 (dF_i - dF_j) . r_ij / r) of the pairs of :func:`pair_geometry`."""
    if force_errors.ndim != 2 or force_errors.shape[1] != 3:
        raise DataError(f"force errors of shape {force_errors.shape}: expected (atoms, 3)")
    i, j = geometry["i"], geometry["j"]
    if len(i) and max(int(i.max()), int(j.max())) >= len(force_errors):
        raise DataError(f"force errors for {len(force_errors)} atoms, but the pairs index atom {max(i.max(), j.max())}")
    return geometry["d"], 0.5 * np.einsum("pk,pk->p", force_errors[i] - force_errors[j], geometry["unit"])


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
