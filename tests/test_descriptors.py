"""SOAP features and their names: the layout checked against physics.

Facts used (verified numerically against dscribe 2.1.2):

* Inversion maps Y_lm to (-1)^l Y_lm. In a centrosymmetric crystal every
  centre's environment has an inverted partner, so the *centre-averaged*
  coefficients (``average="inner"``) of odd l vanish, and with them every
  odd-l power-spectrum feature. A rattled cell breaks this.
* One centre with neighbours all at one distance r: c_nlm = sum_j R_nl(r)
  Y_lm(r_j), so p_nn'l = R_nl R_n'l (2l+1)/(4 pi) sum_ij P_l(cos theta_ij).
  Two neighbours at angle theta over one neighbour: 2 + 2 P_l(cos theta),
  for every n, n' (the radial and normalisation factors cancel).
* Neighbour A at r1 and neighbour B at r2 (different species, angle theta):
  p^{AB}_{nn'l}^2 = P_l(cos theta)^2 p^{AA}_{nnl} p^{BB}_{n'n'l}, which pins
  n to the first species of the pair and n' to the second.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from numpy.polynomial.legendre import legval
from pydantic import ValidationError

from harness.errors import CheckError, DataError
from harness.explain.descriptors import (
    FeatureInfo,
    involves,
    make_soap,
    parse_feature_name,
    soap_feature_names,
    soap_features,
    species_pairs,
)
from harness.suite.schema import Soap

SETTINGS = Soap(species=["Cr", "Sb", "Te"])
NAMES = soap_feature_names(SETTINGS)
INFO = [parse_feature_name(n) for n in NAMES]
L = np.array([i.l for i in INFO])

BLOCK_SIZES = {
    ("Cr", "Cr"): 50,
    ("Cr", "Sb"): 80,
    ("Cr", "Te"): 80,
    ("Sb", "Sb"): 50,
    ("Sb", "Te"): 80,
    ("Te", "Te"): 50,
}


def _legendre(l: int, x: float) -> float:  # noqa: E741
    return float(legval(x, [0.0] * l + [1.0]))


def _centrosymmetric_cell(seed: int = 0) -> Atoms:
    """A low-symmetry triclinic Cr/Sb/Te cell with an inversion centre."""
    rng = np.random.default_rng(seed)
    cell = np.diag([6.1, 6.7, 7.3]) + rng.normal(0.0, 0.3, (3, 3))
    frac = rng.random((4, 3))
    frac = np.vstack([frac, -frac]) % 1.0
    symbols = ["Cr", "Sb", "Te", "Te"] * 2
    return Atoms(symbols, scaled_positions=frac, cell=cell, pbc=True)


def _single_centre(settings: Soap, atoms: Atoms) -> np.ndarray:
    soap = make_soap(settings, average="off")
    return np.asarray(soap.create(atoms, centers=[0]))[0]


def _index(pair: tuple[str, str], n: int, n_prime: int, l: int) -> int:  # noqa: E741
    return NAMES.index(f"{pair[0]}-{pair[1]}_n{n}{n_prime}_l{l}")


# ---------------------------------------------------------------- names


def test_name_count_matches_dscribe_and_paper_example() -> None:
    assert len(NAMES) == 390 == make_soap(SETTINGS).get_number_of_features()
    assert len(set(NAMES)) == len(NAMES)
    assert "Cr-Cr_n13_l3" in NAMES


def test_blocks_follow_get_location() -> None:
    soap = make_soap(SETTINGS)
    assert species_pairs(SETTINGS) == list(BLOCK_SIZES)
    for pair, size in BLOCK_SIZES.items():
        loc = soap.get_location(pair)
        assert loc.stop - loc.start == size
        block = NAMES[loc]
        assert all(parse_feature_name(n).pair == pair for n in block)
        assert block[0] == f"{pair[0]}-{pair[1]}_n11_l0"
        assert block[-1] == f"{pair[0]}-{pair[1]}_n44_l4"


def test_block_order_is_atomic_number_order_not_given_order() -> None:
    shuffled = Soap(species=["Te", "Cr", "Sb"])
    assert soap_feature_names(shuffled) == NAMES


def test_l_outer_then_n_then_n_prime() -> None:
    cr = NAMES[:50]
    assert cr[:5] == [f"Cr-Cr_n{a}{b}_l0" for a, b in ("11", "12", "13", "14", "22")]
    assert cr[10] == "Cr-Cr_n11_l1"
    cross = NAMES[50:130]
    assert cross[:5] == [f"Cr-Sb_n1{b}_l0" for b in "1234"] + ["Cr-Sb_n21_l0"]
    assert cross[16] == "Cr-Sb_n11_l1"


def test_same_species_blocks_hold_only_n_prime_ge_n() -> None:
    for info in INFO:
        if info.pair[0] == info.pair[1]:
            assert info.n_prime >= info.n
    # cross-species blocks hold every (n, n') pair
    cross = {(i.n, i.n_prime) for i in INFO if i.pair == ("Sb", "Te")}
    assert cross == {(a, b) for a in range(1, 5) for b in range(1, 5)}


def test_parse_feature_name_and_involves() -> None:
    assert parse_feature_name("Cr-Sb_n13_l3") == FeatureInfo(("Cr", "Sb"), 1, 3, 3)
    assert involves("Cr-Sb_n13_l3", "Cr")
    assert involves("Cr-Sb_n13_l3", "Sb")
    assert not involves("Cr-Sb_n13_l3", "Te")
    for bad in ("Cr-Sb_n1_l3", "CrSb_n13_l3", "Cr-Sb_n13", "Qq-Sb_n13_l3"):
        with pytest.raises(CheckError):
            parse_feature_name(bad)


def test_feature_classes_count() -> None:
    assert sum(involves(n, "Cr") for n in NAMES) == 50 + 80 + 80
    assert sum(i.l == 0 for i in INFO) == 390 // 5


# ---------------------------------------------------------- physics of layout


def test_centrosymmetric_crystal_zeros_exactly_the_odd_l_names() -> None:
    x = soap_features([_centrosymmetric_cell()], SETTINGS)[0]
    scale = np.abs(x).max()
    odd, even = L % 2 == 1, L % 2 == 0
    assert np.abs(x[odd]).max() < 1e-10 * scale
    # every even-l same-species diagonal (n = n') entry is a sum of squares > 0
    diag_even = [
        k for k, i in enumerate(INFO) if i.l % 2 == 0 and i.n == i.n_prime and i.pair[0] == i.pair[1]
    ]
    assert np.all(x[diag_even] > 1e-6 * scale)
    assert np.abs(x[even]).max() > 0.1 * scale


def test_rattled_crystal_has_odd_l_signal() -> None:
    atoms = _centrosymmetric_cell()
    atoms.rattle(0.05, seed=1)
    x = soap_features([atoms], SETTINGS)[0]
    assert np.abs(x[L % 2 == 1]).max() > 1e-6 * np.abs(x).max()


def test_structure_without_cr_zeroes_all_cr_blocks() -> None:
    atoms = bulk("NaCl", "rocksalt", a=6.0)
    atoms.set_chemical_symbols(["Sb", "Te"])
    atoms = atoms.repeat((2, 1, 1))
    atoms.rattle(0.05, seed=2)
    x = soap_features([atoms], SETTINGS)[0]
    cr = np.array([involves(n, "Cr") for n in NAMES])
    assert np.all(x[cr] == 0.0)
    assert np.all(np.abs(x[~cr]).max() > 0)
    for pair in (("Sb", "Sb"), ("Sb", "Te"), ("Te", "Te")):
        block = [k for k, i in enumerate(INFO) if i.pair == pair]
        assert np.abs(x[block]).max() > 0


@pytest.mark.parametrize("theta", [np.pi / 2, np.pi, 1.1, 2.3])
def test_two_neighbour_ratio_follows_legendre_for_every_name(theta: float) -> None:
    off = Soap(species=["Cr", "Sb", "Te"], periodic=False)
    r = 2.8
    one = Atoms(["Cr", "Te"], positions=[[0, 0, 0], [0, 0, r]])
    two = Atoms(
        ["Cr", "Te", "Te"],
        positions=[[0, 0, 0], [0, 0, r], [r * np.sin(theta), 0, r * np.cos(theta)]],
    )
    p1, p2 = _single_centre(off, one), _single_centre(off, two)
    block = [k for k, i in enumerate(INFO) if i.pair == ("Te", "Te")]
    assert len(block) == 50
    for k in block:
        expected = 2.0 + 2.0 * _legendre(INFO[k].l, np.cos(theta))
        assert abs(p1[k]) > 1e-6
        assert p2[k] / p1[k] == pytest.approx(expected, abs=1e-8), NAMES[k]


def test_cross_block_n_belongs_to_first_species() -> None:
    """p^{SbTe}_{nn'l}^2 = P_l^2 p^{SbSb}_{nnl} p^{TeTe}_{n'n'l} (Cauchy-Schwarz equality)."""
    off = Soap(species=["Cr", "Sb", "Te"], periodic=False)
    theta, r_sb, r_te = 1.2, 2.3, 3.6
    atoms = Atoms(
        ["Cr", "Sb", "Te"],
        positions=[
            [0, 0, 0],
            [0, 0, r_sb],
            [r_te * np.sin(theta), 0, r_te * np.cos(theta)],
        ],
    )
    p = _single_centre(off, atoms)
    cross = p[[k for k, i in enumerate(INFO) if i.pair == ("Sb", "Te")]].reshape(5, 4, 4)
    # the radial profiles differ, so n <-> n' is not a symmetry of the cross block
    assert np.abs(cross[0] - cross[0].T).max() > 1e-3 * np.abs(cross[0]).max()
    for i in INFO:
        if i.pair != ("Sb", "Te"):
            continue
        lhs = p[_index(("Sb", "Te"), i.n, i.n_prime, i.l)] ** 2
        rhs = (
            _legendre(i.l, np.cos(theta)) ** 2
            * p[_index(("Sb", "Sb"), i.n, i.n, i.l)]
            * p[_index(("Te", "Te"), i.n_prime, i.n_prime, i.l)]
        )
        assert lhs == pytest.approx(rhs, rel=1e-8, abs=1e-12), f"Sb-Te n{i.n}{i.n_prime} l{i.l}"


def test_same_species_block_is_rank_one_for_one_neighbour() -> None:
    """One Te neighbour: p^{TeTe}_{nn'l}^2 = p_{nnl} p_{n'n'l} for the n' >= n entries."""
    off = Soap(species=["Cr", "Sb", "Te"], periodic=False)
    p = _single_centre(off, Atoms(["Cr", "Te"], positions=[[0, 0, 0], [0.4, 0.3, 2.7]]))
    for i in INFO:
        if i.pair != ("Te", "Te"):
            continue
        lhs = p[_index(("Te", "Te"), i.n, i.n_prime, i.l)] ** 2
        rhs = p[_index(("Te", "Te"), i.n, i.n, i.l)] * p[_index(("Te", "Te"), i.n_prime, i.n_prime, i.l)]
        assert lhs == pytest.approx(rhs, rel=1e-8, abs=1e-12)


# ---------------------------------------------------------- soap_features API


def test_soap_features_shape_dtype_and_many_structures() -> None:
    a = _centrosymmetric_cell(0)
    b = _centrosymmetric_cell(1)
    x = soap_features([a, b], SETTINGS)
    assert x.shape == (2, 390) and x.dtype == np.float64
    assert np.all(np.isfinite(x))
    assert not np.allclose(x[0], x[1])
    np.testing.assert_allclose(x[1], soap_features([b], SETTINGS)[0], rtol=1e-12)


def test_unknown_element_names_element_and_index() -> None:
    good = _centrosymmetric_cell()
    bad = good.copy()
    bad[3].symbol = "Ge"
    with pytest.raises(DataError, match=r"structure 1 .*Ge"):
        soap_features([good, bad], SETTINGS)


def test_settings_validation() -> None:
    # one settings type: the suite schema's SOAP block validates itself
    with pytest.raises(ValidationError, match="n_max"):
        Soap(species=["Cr", "Sb", "Te"], n_max=10)
    with pytest.raises(ValidationError, match="twice"):
        Soap(species=["Cr", "Cr"])
    with pytest.raises(ValidationError, match="average"):  # per-atom vectors are the per-atom check's business
        Soap(species=["Cr", "Sb", "Te"], average="off")
    with pytest.raises(CheckError, match="not resolved"):
        soap_features([_centrosymmetric_cell()], Soap())
