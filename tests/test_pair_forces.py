"""Pair-resolved central force errors recover a planted pair term's derivative, by pair and distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from harness.explain.pair_forces import central_force_errors, shell_profile
from harness.explain.planted import PairTerm

TERM = PairTerm("Cr", "Cr", eps_eV=0.2, r0_A=3.5, sigma_A=0.4)
TEST_SET = Path(__file__).resolve().parents[1] / "reference_data" / "cr_sb2te3" / "test.extxyz.gz"


def test_an_isolated_pair_gives_the_derivative_exactly() -> None:
    frames = [Atoms("CrCr", positions=[[0, 0, 0], [0.3, -0.2, r]], cell=[30, 30, 30]) for r in (3.0, 3.6, 4.1)]
    errors = np.concatenate([TERM.evaluate(a)[2] for a in frames])
    d, c = central_force_errors(frames, errors, ("Cr", "Cr"), 6.0)
    assert len(d) == 3  # each pair once
    assert c == pytest.approx(TERM.dphi_dr(d), abs=1e-12)
    assert c[0] > 0 and c[2] < 0  # inside r0 the energy rises with r (attractive, c > 0), beyond it falls (repulsive)


def test_sign_means_too_attractive_or_too_repulsive() -> None:
    # a repulsive error (energy falls with r): the model pushes the atoms apart, c < 0
    repulsive = PairTerm("Cr", "Te", eps_eV=0.2, r0_A=2.0, sigma_A=1.0)
    atoms = Atoms("CrTe", positions=[[0, 0, 0], [0, 0, 3.0]], cell=[30, 30, 30])
    d, c = central_force_errors([atoms], repulsive.evaluate(atoms)[2], ("Cr", "Te"), 6.0)
    assert c[0] < 0
    _, none = central_force_errors([atoms], repulsive.evaluate(atoms)[2], ("Sb", "Te"), 6.0)
    assert len(none) == 0


def test_planted_term_profile_on_the_shipped_structures() -> None:
    frames = [a for a in read(TEST_SET, index=":") if a.info["n_Cr"] >= 6][::6]
    errors = np.concatenate([TERM.evaluate(a)[2] for a in frames])
    d, c = central_force_errors(frames, errors, ("Cr", "Cr"), 6.0)
    profile = shell_profile(d, c, np.arange(2.0, 6.01, 0.5), min_pairs=10)
    assert len(profile) >= 5
    for shell in profile:  # other Cr neighbours add noise; the mean follows dphi/dr at the shell
        r = np.linspace(shell.lo_A, shell.hi_A, 50)
        assert shell.mean_eV_per_A == pytest.approx(float(np.mean(TERM.dphi_dr(r))), abs=0.05)
    # the other pair classes carry no error: the term acts only on Cr-Cr
    d2, c2 = central_force_errors(frames, errors, ("Sb", "Te"), 6.0)
    assert len(d2) > 1000 and abs(c2.mean()) < 1e-3
