"""Invariance (hypothesis): rotating, translating, permuting atoms or wrapping them by
lattice vectors leaves Grad-CAM scores (tiny MACE, float64) and SOAP vectors unchanged.

The controls show the tolerances are not vacuous: moving one atom by 0.2 A, or
straining the cell by 2 %, changes both far beyond them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase import Atoms
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.explain.descriptors import soap_features
from harness.explain.metrics import per_element_mean
from harness.models.mace.model import MaceModel
from harness.models.mace.tiny import build_tiny_mace
from harness.suite.schema import Soap

SOAP = Soap(species=["Cr", "Sb", "Te"], r_cut_A=4.0, n_max=3, l_max=3)
SYMBOLS = ["Cr", "Sb", "Sb", "Te", "Te", "Te", "Cr", "Sb"]
FRACTIONAL = np.array(
    [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]]
)
# float64 round-off is ~1e-15 relative; these leave room for summation order, not for physics
SCORE_RTOL = 1e-8
SOAP_RTOL = 1e-8
EXAMPLES = settings(max_examples=10, deadline=None)


def _structure(seed: int) -> Atoms:
    cell = np.array([[6.1, 0.0, 0.0], [0.4, 5.9, 0.0], [0.2, -0.3, 6.3]])  # triclinic, so wrapping matters
    atoms = Atoms(SYMBOLS, scaled_positions=FRACTIONAL, cell=cell, pbc=True)
    atoms.rattle(0.15, seed=seed)
    return atoms


def _rotation(q: tuple[float, float, float, float]) -> np.ndarray:
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _rotated(atoms: Atoms, rotation: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    out.set_positions(atoms.positions @ rotation.T)
    return out


def _translated(atoms: Atoms, shift: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.translate(shift)
    out.wrap()
    return out


def _wrapped(atoms: Atoms, images: np.ndarray) -> Atoms:
    """Each atom moved by whole lattice vectors (images: (N, 3) integers)."""
    out = atoms.copy()
    out.set_positions(atoms.positions + images @ atoms.cell.array)
    return out


@pytest.fixture(scope="module")
def model() -> MaceModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = build_tiny_mace(["Cr", "Sb", "Te"], seed=5, num_channels=8, max_L=1, r_max=4.0)
    return MaceModel.from_module(module, name="tiny")


def _scores(model: MaceModel, atoms: Atoms) -> np.ndarray:
    return model.evaluate([atoms]).gradcam_raw


def _assert_same_scores(model: MaceModel, a: Atoms, b: Atoms, order: np.ndarray | None = None) -> None:
    """Per-atom raw scores (b's atom i is a's atom order[i]) and per-element mean ReLU scores agree."""
    sa, sb = _scores(model, a), _scores(model, b)
    order = np.arange(len(a)) if order is None else order
    scale = np.max(np.abs(sa))
    assert scale > 0
    np.testing.assert_allclose(sb, sa[order], rtol=0, atol=SCORE_RTOL * scale)
    ma = per_element_mean(np.maximum(sa, 0), np.array(a.get_chemical_symbols()))
    mb = per_element_mean(np.maximum(sb, 0), np.array(b.get_chemical_symbols()))
    assert ma.keys() == mb.keys()
    for element in ma:
        assert mb[element] == pytest.approx(ma[element], rel=0, abs=SCORE_RTOL * scale)


def _assert_same_soap(a: Atoms, b: Atoms) -> None:
    va, vb = soap_features([a, b], SOAP)
    scale = np.max(np.abs(va))
    assert scale > 0
    np.testing.assert_allclose(vb, va, rtol=0, atol=SOAP_RTOL * scale)


quaternions = st.tuples(*[st.floats(-1, 1) for _ in range(4)]).filter(lambda q: np.linalg.norm(q) > 0.1)
shifts = st.tuples(*[st.floats(-10, 10) for _ in range(3)]).map(np.array)
seeds = st.integers(0, 2**16)


@EXAMPLES
@given(seed=seeds, q=quaternions)
def test_rotation(model: MaceModel, seed: int, q: tuple[float, float, float, float]) -> None:
    atoms = _structure(seed)
    rotated = _rotated(atoms, _rotation(q))
    _assert_same_scores(model, atoms, rotated)
    _assert_same_soap(atoms, rotated)


@EXAMPLES
@given(seed=seeds, shift=shifts)
def test_translation(model: MaceModel, seed: int, shift: np.ndarray) -> None:
    atoms = _structure(seed)
    moved = _translated(atoms, shift)
    _assert_same_scores(model, atoms, moved)
    _assert_same_soap(atoms, moved)


@EXAMPLES
@given(seed=seeds, order=st.permutations(list(range(len(SYMBOLS)))))
def test_permutation(model: MaceModel, seed: int, order: list[int]) -> None:
    atoms = _structure(seed)
    permuted = atoms[order]
    _assert_same_scores(model, atoms, permuted, order=np.array(order))
    _assert_same_soap(atoms, permuted)


@EXAMPLES
@given(seed=seeds, images=st.lists(st.tuples(*[st.integers(-2, 2)] * 3), min_size=8, max_size=8).map(np.array))
def test_lattice_wrapping(model: MaceModel, seed: int, images: np.ndarray) -> None:
    atoms = _structure(seed)
    unwrapped = _wrapped(atoms, images)
    _assert_same_scores(model, atoms, unwrapped)
    _assert_same_soap(atoms, _translated(unwrapped, np.zeros(3)))  # wrapped back into the cell


def test_soap_of_positions_outside_the_cell() -> None:
    # dscribe's periodic SOAP alone is wrong here (max difference 20.9 on vectors
    # of size 30); harness.explain.descriptors wraps a copy first
    atoms = _structure(0)
    images = np.array([[1, 0, 0], [0, -1, 0], [0, 0, 2], [0, 0, 0], [-2, 1, 0], [0, 0, 0], [1, 1, 1], [0, 0, -1]])
    _assert_same_soap(atoms, _wrapped(atoms, images))


@pytest.mark.parametrize("change", ["move one atom", "strain the cell"])
def test_controls_a_physical_change_exceeds_the_tolerances(model: MaceModel, change: str) -> None:
    atoms = _structure(0)
    other = atoms.copy()
    if change == "move one atom":
        other.positions[0] += [0.2, 0.0, 0.0]
    else:
        other.set_cell(atoms.cell.array * 1.02, scale_atoms=True)
    with pytest.raises(AssertionError):
        _assert_same_scores(model, atoms, other)
    with pytest.raises(AssertionError):
        _assert_same_soap(atoms, other)
    sa, sb = _scores(model, atoms), _scores(model, other)
    assert np.max(np.abs(sa - sb)) > 1e4 * SCORE_RTOL * np.max(np.abs(sa))
