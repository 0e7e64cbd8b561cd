"""Pair-shell descriptor: analytic shell counts, name/column layout, periodic images."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from pydantic import ValidationError

from harness.errors import CheckError, DataError
from harness.explain.pair_shells import (
    pair_shell_feature_names,
    pair_shell_features,
    parse_pair_shell_name,
    structure_pair_shells,
)
from harness.suite.schema import PairShells

HARD = PairShells(species=["Te", "Cr"], r_min_A=2.0, r_max_A=6.0, shell_width_A=0.25, smooth_A=0.0)


def column(x: np.ndarray, settings: PairShells, name: str) -> np.ndarray:
    return x[:, pair_shell_feature_names(settings).index(name)]


def test_dimer_lands_in_one_named_shell_per_centre() -> None:
    atoms = Atoms("CrTe", positions=[[5, 5, 5], [5, 5, 7.9]], cell=[20, 20, 20], pbc=False)
    x = structure_pair_shells(atoms, HARD)
    assert x.shape == (2, 2 * 2 * 16 + 2)
    assert column(x, HARD, "Cr|Te@2.75-3.00A").tolist() == [1.0, 0.0]  # row 0 is the Cr atom
    assert column(x, HARD, "Te|Cr@2.75-3.00A").tolist() == [0.0, 1.0]
    assert column(x, HARD, "centre=Cr").tolist() == [1.0, 0.0]
    assert column(x, HARD, "centre=Te").tolist() == [0.0, 1.0]
    assert x.sum() == 4.0  # two counts and two indicators, nothing else
    # a misread layout (neighbour outer, or shells reversed) would put the count elsewhere
    assert column(x, HARD, "Cr|Cr@2.75-3.00A").tolist() == [0.0, 0.0]
    assert column(x, HARD, "Cr|Te@5.00-5.25A").tolist() == [0.0, 0.0]


def test_linear_trimer_counts_both_distances() -> None:
    # Cr - Te - Te on a line, 2.6 A apart: Cr sees Te at 2.6 and 5.2 A
    atoms = Atoms("CrTeTe", positions=[[5, 5, 5], [5, 5, 7.6], [5, 5, 10.2]], cell=[20, 20, 20], pbc=False)
    x = structure_pair_shells(atoms, HARD)
    assert column(x, HARD, "Cr|Te@2.50-2.75A").tolist() == [1.0, 0.0, 0.0]
    assert column(x, HARD, "Cr|Te@5.00-5.25A").tolist() == [1.0, 0.0, 0.0]
    assert column(x, HARD, "Te|Te@2.50-2.75A").tolist() == [0.0, 1.0, 1.0]
    assert column(x, HARD, "Te|Cr@2.50-2.75A").tolist() == [0.0, 1.0, 0.0]
    assert column(x, HARD, "Te|Cr@5.00-5.25A").tolist() == [0.0, 0.0, 1.0]


def test_periodic_images_are_counted() -> None:
    # one Cr in a simple cubic cell of 3.1 A: 6 images at 3.1, 12 at 4.38, 8 at 5.37 A
    atoms = Atoms("Cr", positions=[[0.3, 0.2, 0.1]], cell=np.eye(3) * 3.1, pbc=True)
    x = structure_pair_shells(atoms, HARD)
    assert column(x, HARD, "Cr|Cr@3.00-3.25A").tolist() == [6.0]
    assert column(x, HARD, "Cr|Cr@4.25-4.50A").tolist() == [12.0]
    assert column(x, HARD, "Cr|Cr@5.25-5.50A").tolist() == [8.0]
    # an atom outside the cell has the same environment
    moved = atoms.copy()
    moved.positions += [7.0, -4.0, 31.0]
    assert np.array_equal(structure_pair_shells(moved, HARD), x)


def test_smooth_shells_are_a_partition_of_the_count() -> None:
    smooth = PairShells(species=["Cr", "Te"], r_min_A=2.0, r_max_A=6.0, shell_width_A=0.25, smooth_A=0.05)
    atoms = Atoms("CrTe", positions=[[5, 5, 5], [5, 5, 8.0]], cell=[20, 20, 20], pbc=False)  # exactly on an edge
    x = structure_pair_shells(atoms, smooth)
    assert column(x, smooth, "Cr|Te@2.75-3.00A")[0] == pytest.approx(0.5)
    assert column(x, smooth, "Cr|Te@3.00-3.25A")[0] == pytest.approx(0.5)
    assert x[0, :-2].sum() == pytest.approx(1.0)


def test_names_parse_and_selection_keeps_rows() -> None:
    info = parse_pair_shell_name("Cr|Te@2.75-3.00A")
    assert (info.centre, info.neighbour, info.lo_A, info.hi_A) == ("Cr", "Te", 2.75, 3.0)
    assert parse_pair_shell_name("centre=Te").is_indicator
    with pytest.raises(CheckError):
        parse_pair_shell_name("Cr-Te_n11_l0")
    a = Atoms("CrTe", positions=[[5, 5, 5], [5, 5, 7.9]], cell=[20, 20, 20])
    b = Atoms("TeTe", positions=[[5, 5, 5], [5, 5, 7.6]], cell=[20, 20, 20])
    full = pair_shell_features([a, b], HARD)
    picked = pair_shell_features([a, b], HARD, atoms_of=[np.array([1]), np.array([0, 1])])
    assert np.array_equal(picked, full[[1, 2, 3]])


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValidationError, match="whole number"):  # one settings type: the suite schema's
        PairShells(species=["Cr"], r_min_A=2.0, r_max_A=6.1, shell_width_A=0.25)
    with pytest.raises(DataError, match="Sb"):
        pair_shell_features([Atoms("CrSb", positions=[[0, 0, 0], [0, 0, 3]], cell=[9, 9, 9])], HARD)
