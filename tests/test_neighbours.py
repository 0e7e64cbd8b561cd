"""harness.models.neighbours: the same edges as MACE's own (matscipy) neighbour list, for every backend."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import read

from harness.errors import DataError
from harness.models.mace.model import MaceModel
from harness.models.mace.tiny import build_tiny_mace
from harness.models.neighbours import available_backends, neighbour_list, resolve_backend

ROOT = Path(__file__).resolve().parents[1]
TEST_SET = ROOT / "reference_data" / "cr_sb2te3" / "test.extxyz.gz"
BACKENDS = available_backends()


def _edge_set(edge_index: np.ndarray, unit_shifts: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    s = np.asarray(unit_shifts).round().astype(int)
    return sorted(zip(*np.asarray(edge_index).tolist(), *s.T.tolist(), strict=True))


def _small_cells() -> dict[str, Atoms]:
    """Cells smaller than the 6 A cutoff (several images of one atom are neighbours)."""
    prim = bulk("SbTe", "rocksalt", a=6.0)  # fcc primitive vectors of 4.24 A
    prim.rattle(0.05, seed=1)
    one = Atoms("Cr", positions=[[0.1, 0.2, 0.3]], cell=[[2.5, 0, 0], [0.7, 2.6, 0], [0.3, 0.4, 2.8]], pbc=True)
    skew = bulk("SbTe", "rocksalt", a=6.0, cubic=True)
    skew.set_cell(skew.cell.array + [[0, 0, 0], [2.0, 0, 0], [1.0, 1.5, 0]], scale_atoms=True)
    skew[0].symbol = "Cr"
    skew.rattle(0.1, seed=2)
    slab = bulk("SbTe", "rocksalt", a=6.0).repeat((2, 1, 1))
    slab.pbc = (True, True, False)
    slab.center(vacuum=3.0, axis=2)
    mol = molecule("CH4")
    mol.symbols[0] = "Cr"
    mol.symbols[1:] = "Te"
    return {"fcc-primitive": prim, "one-atom-triclinic": one, "skewed-cubic": skew, "slab": slab, "cluster": mol}


@pytest.fixture(scope="module")
def cr_sb2te3() -> list[Atoms]:
    return read(TEST_SET, index=":3")


@pytest.fixture(scope="module")
def mace_model() -> MaceModel:
    return MaceModel.from_module(build_tiny_mace(["Cr", "Sb", "Te", "C", "H"], r_max=6.0), name="r6")


def _check_same_as_mace(model: MaceModel, atoms: Atoms, backend: str) -> None:
    graph = model.graphs([atoms])[0]
    ours = neighbour_list(atoms.positions, atoms.cell.array, atoms.pbc, model.r_max_A, backend=backend)
    theirs = _edge_set(graph.edge_index.numpy(), graph.unit_shifts.numpy())
    assert ours.n_edges == len(theirs)
    assert _edge_set(ours.edge_index, ours.unit_shifts) == theirs
    # Same shift vectors per edge (angstrom) and the same stored cell.
    key = {e: k for k, e in enumerate(theirs)}
    order = np.argsort([key[e] for e in _edge_set(ours.edge_index, ours.unit_shifts)])
    mace_order = np.lexsort(
        (*graph.unit_shifts.numpy().T[::-1], graph.edge_index[1].numpy(), graph.edge_index[0].numpy())
    )
    np.testing.assert_allclose(ours.shifts[order], graph.shifts.numpy()[mace_order], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.cell, graph.cell.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cr_sb2te3_edges_equal_mace(backend: str, cr_sb2te3: list[Atoms], mace_model: MaceModel) -> None:
    for atoms in cr_sb2te3:
        assert len(atoms) >= 120 and atoms.pbc.all()
        _check_same_as_mace(mace_model, atoms, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(_small_cells()))
def test_small_and_partly_periodic_cells_equal_mace(backend: str, name: str, mace_model: MaceModel) -> None:
    _check_same_as_mace(mace_model, _small_cells()[name], backend)


def _brute_force(atoms: Atoms, cutoff: float) -> list[tuple[int, int, int, int, int]]:
    """Every (i, j, S) with |r_j - r_i + S @ cell| < cutoff by explicit image enumeration."""
    cell = atoms.cell.array
    reach = [int(np.ceil(cutoff * np.linalg.norm(np.linalg.inv(cell)[:, a]))) + 1 for a in range(3)]
    pos = atoms.positions
    out = []
    for s in itertools.product(*[range(-r, r + 1) for r in reach]):
        d = pos[None, :, :] - pos[:, None, :] + np.asarray(s) @ cell
        i, j = np.nonzero(np.linalg.norm(d, axis=-1) < cutoff)
        out += [(int(a), int(b), *s) for a, b in zip(i, j, strict=True) if not (a == b and not any(s))]
    return sorted(out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_answer_by_image_enumeration(backend: str) -> None:
    cells = _small_cells()
    for atoms in (cells["one-atom-triclinic"], cells["fcc-primitive"], cells["skewed-cubic"]):
        got = neighbour_list(atoms.positions, atoms.cell.array, True, 6.0, backend=backend)
        assert _edge_set(got.edge_index, got.unit_shifts) == _brute_force(atoms, 6.0)
        vectors = atoms.positions[got.edge_index[1]] - atoms.positions[got.edge_index[0]] + got.shifts
        assert np.all(np.linalg.norm(vectors, axis=1) < 6.0)


def test_simple_cubic_neighbour_count() -> None:
    """One atom in a 2 A cubic cell, cutoff 3 A: 6 images at 2 A and 12 at 2.83 A (corners, 3.46 A, out)."""
    atoms = Atoms("Cr", positions=[[0, 0, 0]], cell=np.eye(3) * 2.0, pbc=True)
    got = neighbour_list(atoms.positions, atoms.cell.array, True, 3.0)
    assert got.n_edges == 18
    assert not np.any((got.edge_index[0] == got.edge_index[1]) & ~got.unit_shifts.any(axis=1))


def test_backends_sorted_identically(cr_sb2te3: list[Atoms]) -> None:
    atoms = cr_sb2te3[0]
    results = [neighbour_list(atoms.positions, atoms.cell.array, True, 5.0, backend=b) for b in BACKENDS]
    for other in results[1:]:
        np.testing.assert_array_equal(other.edge_index, results[0].edge_index)
        np.testing.assert_array_equal(other.unit_shifts, results[0].unit_shifts)


def test_auto_prefers_vesin_when_installed() -> None:
    assert BACKENDS[-1] == "ase"
    assert resolve_backend("auto") == BACKENDS[0]
    if "vesin" in BACKENDS:
        assert resolve_backend("auto") == "vesin"


def test_validation_errors() -> None:
    with pytest.raises(DataError, match="unknown neighbour-list backend 'cuda'"):
        resolve_backend("cuda")
    with pytest.raises(DataError, match=r"shape \(N, 3\)"):
        neighbour_list(np.zeros((4, 2)), np.eye(3), True, 3.0)
    with pytest.raises(DataError, match="cutoff must be a positive"):
        neighbour_list(np.zeros((1, 3)), np.eye(3), True, 0.0)
    with pytest.raises(DataError, match="non-finite"):
        neighbour_list(np.full((1, 3), np.nan), np.eye(3), True, 3.0)
    with pytest.raises(DataError, match="singular cell"):
        neighbour_list(np.zeros((2, 3)), np.diag([1.0, 1.0, 0.0]) + [[0, 0, 0], [0, 0, 0], [1, 0, 0]], True, 3.0)


def test_edge_order_key_and_lexsort_fallback_agree() -> None:
    from harness.models.neighbours import _edge_order

    rng = np.random.default_rng(0)
    i, j = rng.integers(0, 50, 400), rng.integers(0, 50, 400)
    s = rng.integers(-3, 4, (400, 3))
    want = np.lexsort((s[:, 2], s[:, 1], s[:, 0], j, i))
    keyed = _edge_order(i, j, s, 50)
    fallback = _edge_order(i, j, s, 2**40)  # key would overflow: lexsort path
    for order in (keyed, fallback):
        np.testing.assert_array_equal(np.c_[i, j, s][order], np.c_[i, j, s][want])
