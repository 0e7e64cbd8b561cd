"""Padding-free MACE input batches straight from ``ase.Atoms``.

MACE batches graphs the torch_geometric way: atoms of all structures are
concatenated, edge indices offset by each structure's first atom, and
``batch``/``ptr`` say which atom belongs to which structure. mace builds one
``AtomicData`` object per structure (dozens of small tensors each) and then
collates them; :func:`prepare_batch` writes the same tensors for a whole batch
at once from :mod:`harness.models.neighbours` edges, which keeps graph building
cheaper than a GPU evaluation. It fills the keys MACE models read (positions,
node_attrs, edge_index, shifts, unit_shifts, cell, batch, ptr, head, ...);
``tests/test_pipeline.py`` checks the results against mace's own graphs.

This module does not import mace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from harness.errors import ModelError
from harness.models.neighbours import neighbour_list

_INT_KEYS = ("edge_index", "batch", "ptr", "head")


@dataclass(frozen=True)
class GraphSpec:
    """What graph building needs from a model: its elements, cutoff, dtype and head."""

    atomic_numbers: tuple[int, ...]
    cutoff_A: float
    dtype: torch.dtype = torch.float64
    head_index: int = 0
    backend: str = "auto"

    def __post_init__(self) -> None:
        if not self.atomic_numbers:
            raise ModelError("GraphSpec.atomic_numbers is empty")
        if not self.cutoff_A > 0:
            raise ModelError(f"GraphSpec.cutoff_A={self.cutoff_A} must be > 0")
        if self.dtype not in (torch.float32, torch.float64):
            raise ModelError(f"GraphSpec.dtype={self.dtype} must be float32 or float64")


@dataclass(frozen=True)
class HostBatch:
    """One batch on the host, ready to be moved to the model's device."""

    data: dict[str, torch.Tensor]
    n_atoms: np.ndarray  # (S,) int
    n_edges: int
    start: int  # index of the batch's first structure in the input list

    def pin_memory(self) -> HostBatch:
        """A copy in page-locked memory (what ``torch.utils.data.DataLoader(pin_memory=True)`` calls)."""
        pinned = {k: v.pin_memory() for k, v in self.data.items()}
        return HostBatch(data=pinned, n_atoms=self.n_atoms, n_edges=self.n_edges, start=self.start)

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> dict[str, torch.Tensor]:
        """The batch dict on ``device`` (a fresh dict: the model may write into it)."""
        return {k: v.to(device, non_blocking=non_blocking) for k, v in self.data.items()}


def prepare_batch(
    structures: Sequence[Atoms], spec: GraphSpec, *, start: int = 0, pin_memory: bool = False
) -> HostBatch:
    """The MACE input dict of ``structures`` (host tensors), one graph per structure."""
    if len(structures) == 0:
        raise ModelError("prepare_batch got no structures")
    index_of = np.full(max(spec.atomic_numbers) + 1, -1, dtype=np.int64)
    index_of[list(spec.atomic_numbers)] = np.arange(len(spec.atomic_numbers))
    positions, species, edges, shifts, unit_shifts, cells, pbcs = [], [], [], [], [], [], []
    n_atoms = np.zeros(len(structures), dtype=np.int64)
    offset = 0
    for k, atoms in enumerate(structures):
        z = np.asarray(atoms.numbers, dtype=np.int64)
        known = (z < len(index_of)) & (index_of[np.minimum(z, len(index_of) - 1)] >= 0)
        if not known.all():
            bad = sorted({chemical_symbols[int(x)] for x in z[~known]})
            raise ModelError(
                f"structure {start + k} contains element(s) {', '.join(bad)} the model does not know; "
                f"the model's elements are {', '.join(chemical_symbols[x] for x in spec.atomic_numbers)}"
            )
        pos = np.asarray(atoms.positions, dtype=np.float64)
        pbc = (bool(atoms.pbc[0]), bool(atoms.pbc[1]), bool(atoms.pbc[2]))
        nb = neighbour_list(pos, np.asarray(atoms.cell), pbc, spec.cutoff_A, backend=spec.backend)
        positions.append(pos)
        species.append(index_of[z])
        edges.append(nb.edge_index + offset)
        shifts.append(nb.shifts)
        unit_shifts.append(nb.unit_shifts)
        cells.append(nb.cell)
        pbcs.append(pbc)
        n_atoms[k] = len(atoms)
        offset += len(atoms)
    n_structures = len(structures)
    n_total = int(offset)
    dt = spec.dtype
    species_all = np.concatenate(species)
    node_attrs = torch.zeros(n_total, len(spec.atomic_numbers), dtype=dt)
    node_attrs[torch.arange(n_total), torch.from_numpy(species_all)] = 1.0
    cell = torch.from_numpy(np.concatenate(cells)).to(dt)  # (3S, 3)
    cell_3 = cell.view(n_structures, 3, 3)
    volume = torch.linalg.det(cell_3)
    rcell = torch.zeros_like(cell_3)
    nonzero = volume.abs() > 0
    if bool(nonzero.any()):
        rcell[nonzero] = 2 * torch.pi * torch.linalg.inv(cell_3[nonzero].mT)
    ptr = np.concatenate([[0], np.cumsum(n_atoms)])
    data: dict[str, torch.Tensor] = {
        "positions": torch.from_numpy(np.concatenate(positions)).to(dt),
        "node_attrs": node_attrs,
        "edge_index": torch.from_numpy(np.concatenate(edges, axis=1)),
        "shifts": torch.from_numpy(np.concatenate(shifts)).to(dt),
        "unit_shifts": torch.from_numpy(np.concatenate(unit_shifts)).to(dt),
        "cell": cell,
        "rcell": rcell.reshape(-1, 3),
        "volume": volume,
        "pbc": torch.tensor(pbcs, dtype=torch.bool),
        "batch": torch.from_numpy(np.repeat(np.arange(n_structures), n_atoms)),
        "ptr": torch.from_numpy(ptr.astype(np.int64)),
        "head": torch.full((n_structures,), spec.head_index, dtype=torch.long),
        "charges": torch.zeros(n_total, dtype=dt),
        "total_charge": torch.zeros(n_structures, dtype=dt),
        "total_spin": torch.ones(n_structures, dtype=dt),
    }
    for key in _INT_KEYS:
        data[key] = data[key].to(torch.long)
    if pin_memory:
        data = {k: v.pin_memory() for k, v in data.items()}
    return HostBatch(data=data, n_atoms=n_atoms, n_edges=int(sum(e.shape[1] for e in edges)), start=start)


# On a CPU a batch buys no throughput (the work is compute-bound per atom) and large
# batches cost time: their temporary tensors exceed glibc's mmap threshold, so every
# allocation is a fresh mapping and every page a fault. Measured on the 2-core CI VM,
# 64 structures of 108 atoms, float64, forces and Grad-CAM: batch 16: 19.3 s wall
# (17 s of it system time); 8: 17.5 s; 4: 16.2 s; 2: 14.0 s; 1: 10.5 s (0.06 s system).
CPU_ATOMS_PER_BATCH = 128



def batch_groups(n_atoms: Sequence[int], batch_size: int, *, max_atoms: int | None = None) -> list[list[int]]:
    """Consecutive structure indices in batches of at most ``batch_size`` structures and,
    with ``max_atoms``, at most that many atoms (a larger structure is a batch of its own)."""
    groups: list[list[int]] = []
    current: list[int] = []
    atoms = 0
    for index, n in enumerate(n_atoms):
        full = len(current) >= batch_size or (max_atoms is not None and atoms + n > max_atoms)
        if current and full:
            groups.append(current)
            current, atoms = [], 0
        current.append(index)
        atoms += n
    if current:
        groups.append(current)
    return groups


def chunks(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive batches of at most ``batch_size`` out of ``n``."""
    if batch_size < 1:
        raise ModelError(f"batch_size must be >= 1, got {batch_size}")
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
