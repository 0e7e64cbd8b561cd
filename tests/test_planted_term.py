"""The planted pair term: analytic energy, forces = -grad E (finite differences, PBC), labels and outputs."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from harness.errors import DataError
from harness.explain.planted import PairTerm, plant_into_labels, plant_into_outputs

TERM = PairTerm("Cr", "Te", eps_eV=0.2, r0_A=3.0, sigma_A=0.4)


def periodic_cell(seed: int = 0) -> Atoms:
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 6.0, (8, 3))
    return Atoms("CrTeTeSbCrTeSbTe", positions=positions, cell=[[6.0, 0, 0], [0.7, 5.5, 0], [0, 0.4, 6.5]], pbc=True)


def test_dimer_energy_and_force_are_the_formula() -> None:
    r = 3.3
    atoms = Atoms("CrTe", positions=[[0, 0, 0], [0, 0, r]], cell=[30, 30, 30], pbc=False)
    energy, per_atom, forces = TERM.evaluate(atoms)
    phi = 0.2 * np.exp(-((r - 3.0) / 0.4) ** 2)
    assert energy == pytest.approx(phi)
    assert per_atom == pytest.approx([phi / 2, phi / 2])
    dphi = -2 * (r - 3.0) / 0.16 * phi  # < 0 beyond r0: the pair attracts
    assert forces[0] == pytest.approx([0, 0, dphi])  # F_Cr = phi'(r) (R_Te - R_Cr) / r, along +z
    assert forces[1] == pytest.approx(-forces[0])
    # no Cr-Te pair, no term
    assert TERM.evaluate(Atoms("TeTe", positions=[[0, 0, 0], [0, 0, r]]))[0] == 0.0


def test_forces_are_minus_the_gradient_with_periodic_images() -> None:
    atoms = periodic_cell()
    _, _, forces = TERM.evaluate(atoms)
    assert np.abs(forces).max() > 1e-3  # the cell has Cr-Te pairs in range
    h = 1e-5
    numeric = np.zeros_like(forces)
    for a in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, k] += h
            minus.positions[a, k] -= h
            numeric[a, k] = -(TERM.evaluate(plus)[0] - TERM.evaluate(minus)[0]) / (2 * h)
    assert np.allclose(forces, numeric, atol=1e-7)
    assert np.allclose(forces.sum(axis=0), 0.0, atol=1e-12)  # translation invariance


def test_own_periodic_image_counts_for_a_like_pair() -> None:
    # one Cr in a 3.0 A cubic cell: 6 Cr images at r0; E per atom = 6 * eps / 2
    term = PairTerm("Cr", "Cr", eps_eV=0.1, r0_A=3.0, sigma_A=0.3)
    atoms = Atoms("Cr", positions=[[0, 0, 0]], cell=np.eye(3) * 3.0, pbc=True)
    energy, _, forces = term.evaluate(atoms)
    expected = 0.5 * (
        6 * 0.1 + 12 * 0.1 * np.exp(-((3 * 2**0.5 - 3) / 0.3) ** 2) + 8 * 0.1 * np.exp(-((3 * 3**0.5 - 3) / 0.3) ** 2)
    )
    assert energy == pytest.approx(expected, rel=1e-9)
    assert np.allclose(forces, 0.0, atol=1e-12)


def test_labels_and_outputs_get_the_same_term() -> None:
    atoms = periodic_cell(1)
    atoms.info["E"] = -10.0
    atoms.arrays["F"] = np.ones((len(atoms), 3))
    (planted,) = plant_into_labels([atoms], TERM, energy_key="E", forces_key="F", atom_energies_key="e")
    energy, per_atom, forces = TERM.evaluate(atoms)
    assert planted.info["E"] == pytest.approx(-10.0 + energy)
    assert np.allclose(planted.arrays["F"], 1.0 + forces)
    assert np.allclose(planted.arrays["e"], per_atom)
    assert atoms.info["E"] == -10.0  # the input is not changed
    e2, f2 = plant_into_outputs([atoms], np.array([-10.0]), np.ones((len(atoms), 3)), TERM)
    assert e2[0] == pytest.approx(planted.info["E"])
    assert np.allclose(f2, planted.arrays["F"])
    with pytest.raises(DataError, match="no atoms.info"):
        plant_into_labels([Atoms("Cr")], TERM)
