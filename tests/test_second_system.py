"""The second shipped system, Au-doped fcc Cu labelled by EMT (suites/cu_au).

Unit part (seconds): the generator's planted pair term is exact (forces = -grad E
by finite differences, periodic images included) and agrees with the harness's
own independent implementation (harness.planted); the shipped data match their
provenance and keep every trajectory in one split.

Gate part (real models, real data, one subprocess per run as in CI, one shared
cache folder): `pytest suites/cu_au` passes the good checkpoint and the gate fails
each must-fail checkpoint on the check meant for it (suites/cu_au/CALIBRATION.md).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read

from harness.planted import PairTerm
from harness.reference import sha256_file

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "reference_data" / "cu_au"


def _generator():
    spec = importlib.util.spec_from_file_location("cu_au_generate", DATA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doped_cell() -> Atoms:
    """A small periodic cell in which Au-Au pairs also cross the cell boundary."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))  # 16 atoms, c = 3.6 A
    symbols = atoms.get_chemical_symbols()
    for k in (0, 1, 5, 10):
        symbols[k] = "Au"
    atoms.set_chemical_symbols(symbols)
    atoms.rattle(0.12, seed=3)
    return atoms


@pytest.mark.parametrize(("a", "b"), [("Au", "Au"), ("Au", "Cu")])
def test_planted_forces_are_minus_the_gradient_of_its_energy(a: str, b: str) -> None:
    gen = _generator()
    atoms = _doped_cell()
    eps, r0, sigma = 0.05, 2.7, 0.2
    energy, forces = gen.pair_term(atoms, a, b, eps, r0, sigma)
    assert energy > 0.01 and np.abs(forces).max() > 0.01  # the cell really holds such pairs
    h = 1e-5
    numeric = np.zeros_like(forces)
    for k in range(len(atoms)):
        for c in range(3):
            shifted = atoms.copy()
            shifted.positions[k, c] += h
            e_plus, _ = gen.pair_term(shifted, a, b, eps, r0, sigma)
            shifted.positions[k, c] -= 2 * h
            e_minus, _ = gen.pair_term(shifted, a, b, eps, r0, sigma)
            numeric[k, c] = -(e_plus - e_minus) / (2 * h)
    np.testing.assert_allclose(forces, numeric, atol=1e-8)
    assert np.abs(forces.sum(axis=0)).max() < 1e-12  # a pair term exerts no net force


def test_planted_term_agrees_with_the_harness_implementation() -> None:
    """Two independent codes of eps*exp(-((r-r0)/sigma)^2), one of them the harness's."""
    gen = _generator()
    atoms = _doped_cell()
    for a, b in (("Au", "Au"), ("Cu", "Au"), ("Cu", "Cu")):
        energy, forces = gen.pair_term(atoms, a, b, 0.05, 2.7, 0.2)
        ref_energy, _, ref_forces = PairTerm(a, b, 0.05, 2.7, 0.2).evaluate(atoms)
        assert energy == pytest.approx(ref_energy, rel=1e-12)
        np.testing.assert_allclose(forces, ref_forces, atol=1e-12)
    # one Au-Au pair at exactly r0 contributes eps; the term of a pure-Cu cell is zero
    pair = Atoms("Au2", positions=[[0, 0, 0], [2.7, 0, 0]], cell=[20, 20, 20], pbc=True)
    assert gen.pair_term(pair, "Au", "Au", 0.05, 2.7, 0.2)[0] == pytest.approx(0.05)
    assert gen.pair_term(bulk("Cu", "fcc", a=3.6, cubic=True), "Au", "Au", 0.05, 2.7, 0.2)[0] == 0.0


def test_shipped_data_match_their_provenance() -> None:
    provenance = json.loads((DATA / "PROVENANCE.json").read_text())
    owner: dict[int, str] = {}
    for name, entry in provenance["files"].items():
        path = DATA / name
        assert sha256_file(path) == entry["sha256"], name
        with gzip.open(path, "rt") as handle:
            frames = read(handle, index=":", format="extxyz")
        assert len(frames) == entry["n_frames"]
        split = name.split(".")[0]
        for atoms in frames:
            assert set(atoms.get_chemical_symbols()) <= {"Cu", "Au"}
            assert np.isfinite(atoms.info["REF_energy"])
            assert atoms.arrays["REF_forces"].shape == (len(atoms), 3)
            # each trajectory lies in exactly one split
            assert owner.setdefault(atoms.info["traj_id"], split) == split
        if split == "test":  # the gate's set: every frame doped, Au-Au pairs in many
            assert all(a.info["n_Au"] >= 2 for a in frames)
            assert sum(a.info["au_au_nn_pairs"] > 0 for a in frames) > len(frames) // 2
    assert set(provenance["planted_pair_terms"]) >= {"planted_auau", "form"}
