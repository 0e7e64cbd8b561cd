"""Neighbour lists for graph building, with the edges MACE's own list gives.

MACE (``mace.data.neighborhood.get_neighborhood``) builds its graphs with
matscipy: every pair (i, j, S) with ``|r_j - r_i + S @ cell| < cutoff``, where
S is an integer shift of periodic images, minus the ``i == j, S == 0`` self
pairs; non-periodic directions are replaced by a cell vector far longer than
the structure, and an all-zero cell by the identity. :func:`neighbour_list`
reproduces that contract (same edges, shifts and returned cell) with a faster
library when one is installed: vesin first, then matscipy, then ASE's
``primitive_neighbor_list`` (always there). Small cells where the cutoff
exceeds the cell size give the multiple-image edges of every backend.

Edges come back sorted by (i, j, S) so that every backend gives the same
arrays. This module does not import mace.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

from harness.errors import DataError

Backend = Literal["auto", "vesin", "matscipy", "ase"]
BACKENDS: tuple[str, ...] = ("vesin", "matscipy", "ase")


@dataclass(frozen=True)
class Neighbours:
    """Directed edges of one structure.

    ``edge_index[0]`` are senders i, ``edge_index[1]`` receivers j; the edge
    vector is ``positions[j] - positions[i] + shifts``, with
    ``shifts = unit_shifts @ cell``. ``cell`` is the cell MACE stores (with the
    non-periodic directions replaced as described in the module docstring).
    """

    edge_index: np.ndarray  # (2, E) int64
    shifts: np.ndarray  # (E, 3) float64, angstrom
    unit_shifts: np.ndarray  # (E, 3) int64
    cell: np.ndarray  # (3, 3) float64
    backend: str

    @property
    def n_edges(self) -> int:
        return int(self.edge_index.shape[1])


@cache
def available_backends() -> tuple[str, ...]:
    """Backends importable here, fastest first (``ase`` is always present)."""
    found = [name for name in ("vesin", "matscipy") if importlib.util.find_spec(name) is not None]
    return (*found, "ase")


def resolve_backend(backend: Backend | str = "auto") -> str:
    """The backend ``backend`` names, or the fastest available for ``"auto"``."""
    if backend == "auto":
        return available_backends()[0]
    if backend not in BACKENDS:
        raise DataError(f"unknown neighbour-list backend {backend!r}; use one of auto, {', '.join(BACKENDS)}")
    if backend not in available_backends():
        raise DataError(
            f"neighbour-list backend {backend!r} is not installed "
            f"(fix: pip install {backend}, or use backend='auto')"
        )
    return backend


def mace_cell(positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool], cutoff: float) -> np.ndarray:
    """The cell MACE uses: identity for an all-zero cell, long vectors along non-periodic axes."""
    cell = np.array(cell, dtype=np.float64, copy=True).reshape(3, 3)
    if not cell.any():
        cell = np.identity(3, dtype=np.float64)
    if not all(pbc):
        extent = (np.max(np.abs(positions)) + 1.0) * 5.0 * cutoff
        for axis in range(3):
            if not pbc[axis]:
                cell[axis, :] = 0.0
                cell[axis, axis] = extent
    return cell


def neighbour_list(
    positions: np.ndarray,
    cell: np.ndarray | None,
    pbc: tuple[bool, bool, bool] | np.ndarray | bool,
    cutoff: float,
    *,
    backend: Backend | str = "auto",
) -> Neighbours:
    """Edges within ``cutoff`` (angstrom), as MACE's ``get_neighborhood`` builds them."""
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise DataError(f"positions must have shape (N, 3), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise DataError("positions contain non-finite values")
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise DataError(f"cutoff must be a positive length in angstrom, got {cutoff}")
    flags = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    periodic = (bool(flags[0]), bool(flags[1]), bool(flags[2]))
    raw_cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    if raw_cell.shape != (3, 3):
        raise DataError(f"cell must have shape (3, 3), got {raw_cell.shape}")
    used_cell = mace_cell(pos, raw_cell, periodic, cutoff)
    if any(periodic) and abs(np.linalg.det(used_cell)) < 1e-12:
        raise DataError("periodic structure has a singular cell (fix: give three independent cell vectors)")
    name = resolve_backend(backend)
    if len(pos) == 0:
        i = j = np.zeros(0, dtype=np.int64)
        s = np.zeros((0, 3), dtype=np.int64)
    elif name == "vesin":
        i, j, s = _vesin(pos, used_cell, periodic, cutoff)
    elif name == "matscipy":
        i, j, s = _matscipy(pos, used_cell, periodic, cutoff)
    else:
        i, j, s = _ase(pos, used_cell, periodic, cutoff)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64).reshape(-1, 3)
    keep = ~((i == j) & ~s.any(axis=1))
    i, j, s = i[keep], j[keep], s[keep]
    order = _edge_order(i, j, s, len(pos))
    i, j, s = i[order], j[order], s[order]
    return Neighbours(
        edge_index=np.stack((i, j)),
        shifts=s.astype(np.float64) @ used_cell,
        unit_shifts=s,
        cell=used_cell,
        backend=name,
    )


def _edge_order(i: np.ndarray, j: np.ndarray, s: np.ndarray, n_atoms: int) -> np.ndarray:
    """The permutation sorting edges by (i, j, S): one integer key, lexsort if it could overflow."""
    if len(i) == 0:
        return np.zeros(0, dtype=np.int64)
    half = int(np.abs(s).max())
    width = 2 * half + 1
    if float(n_atoms) ** 2 * float(width) ** 3 >= 2.0**62:
        return np.lexsort((s[:, 2], s[:, 1], s[:, 0], j, i))
    key = i * n_atoms + j
    for axis in range(3):
        key = key * width + (s[:, axis] + half)
    return np.argsort(key, kind="stable")


def _vesin(pos: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool], cutoff: float):
    from vesin import NeighborList

    # n_threads=1: the pipeline runs several structures at once in threads.
    calculator = NeighborList(cutoff=cutoff, full_list=True, n_threads=1)
    return calculator.compute(points=pos, box=cell, periodic=list(pbc), quantities="ijS")


def _matscipy(pos: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool], cutoff: float):
    from matscipy.neighbours import neighbour_list as matscipy_list

    return matscipy_list(quantities="ijS", pbc=pbc, cell=cell, positions=pos, cutoff=cutoff)


def _ase(pos: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool], cutoff: float):
    from ase.neighborlist import primitive_neighbor_list

    return primitive_neighbor_list(
        "ijS", pbc, cell, pos, cutoff, self_interaction=False, use_scaled_positions=False
    )
