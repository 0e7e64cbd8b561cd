"""Known-answer tests of the "what" level on the shipped structures (real SOAP, real shap).

An error that is an exact, known function of Cr-Cr geometry is planted on the
300 shipped test structures of Cr:Sb2Te3: per atom,

    y = (A / N) * sum over Cr-Cr pairs (periodic images included) of exp(-r / 8 A) * f_c(r),

with a cosine cut-off f_c at 12 A. The surrogate (gradient boosting on the
paper's inner-averaged SOAP) must fit it and SHAP must point at the dopant: the
top features all involve Cr and sit in the isotropic l=0 channel. Shuffling the same target over structures must
leave the surrogate without skill.

What these tests do not claim: that SHAP ranks Cr-Cr features first. It does
not, measured here and recorded in suites/cr_sb2te3/CALIBRATION.md: inner
averaging makes every cross-species block a product of per-species mean
densities (p^{AB}_{nn'l} = sum_m cbar^A_{nlm} cbar^B_{n'lm}), so Cr-Cr, Cr-Sb
and Cr-Te features all scale with the Cr content, and the trees credit any of
them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from harness.explain.descriptors import involves, parse_feature_name, soap_feature_names, soap_features
from harness.explain.surrogate import ErrorSurrogate
from harness.suite.schema import Soap, Surrogate

TEST_SET = Path(__file__).resolve().parents[1] / "reference_data" / "cr_sb2te3" / "test.extxyz.gz"
CUTOFF_A = 12.0
DECAY_A = 8.0
AMPLITUDE_EV = 0.05  # per pair: an RMS of ~1.5 meV/atom on these structures
# faster than the paper's 200 trees of depth 8, same conclusions on this target
FAST = Surrogate(n_estimators=100, learning_rate=0.1, max_depth=6, cv_folds=3)


def crcr_pair_term(atoms) -> float:
    """Total planted energy (eV): A * sum over Cr-Cr pairs of exp(-r/decay) * cosine cut-off.

    Pairs (i < j, or an atom with its own periodic images) over every image
    within the cut-off, enumerated explicitly: only the few Cr atoms matter.
    """
    cr = atoms.positions[atoms.numbers == 24]
    if len(cr) == 0:
        return 0.0
    cell = np.asarray(atoms.cell)
    heights = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    reach = np.ceil(CUTOFF_A / heights).astype(int)
    shifts = np.stack(np.meshgrid(*(np.arange(-k, k + 1) for k in reach), indexing="ij"), -1).reshape(-1, 3) @ cell
    d = cr[None, :, None, :] - cr[:, None, None, :] + shifts[None, None, :, :]  # (i, j, image, 3)
    r = np.linalg.norm(d, axis=-1)
    keep = (r > 1e-8) & (r < CUTOFF_A)  # not an atom with itself in the home cell
    r = r[keep]
    cut = 0.5 * (np.cos(np.pi * r / CUTOFF_A) + 1.0)
    return 0.5 * AMPLITUDE_EV * float(np.sum(np.exp(-r / DECAY_A) * cut))  # each pair counted twice


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray, list[str]]:
    frames = read(TEST_SET, index=":")
    settings = Soap(species=["Cr", "Sb", "Te"])  # the paper's: Cr, Sb, Te; r_cut 5 A; n_max 4; l_max 4; inner average
    x = soap_features(frames, settings)
    y = np.array([crcr_pair_term(a) / len(a) for a in frames])
    return x, y, soap_feature_names(settings)


def test_planted_term_is_a_real_signal(planted) -> None:
    _, y, _ = planted
    # one Cr (or none) gives exactly zero; the doped cells span a range of values
    assert np.count_nonzero(y == 0.0) > 0
    assert np.sqrt(np.mean(y**2)) == pytest.approx(1.5e-3, rel=0.5)
    assert np.ptp(y) > 2e-3  # measured 3.3e-3; 67 of 300 are exactly 0


def test_shap_points_at_the_dopant_for_a_planted_crcr_error(planted) -> None:
    x, y, names = planted
    surrogate = ErrorSurrogate(FAST).fit(x, y, names)
    assert surrogate.cv_r2_ > 0.95  # measured 0.998
    top = [name for name, _ in surrogate.top(20)]
    assert all(involves(name, "Cr") for name in top[:5]), top[:5]
    # 210 of the 390 features involve Cr: 10.8 of 20 by chance; measured 17
    assert sum(involves(name, "Cr") for name in top) >= 15, top
    # a pair term is isotropic: its error lives in the l=0 channel (78 of the 390
    # features: 4 of 20 by chance); measured 20 of 20. The release gate's
    # error-classes check reads this signature off the planted-signal model.
    assert sum(parse_feature_name(name).l == 0 for name in top) >= 18, top


def test_shuffled_target_has_no_skill(planted) -> None:
    x, y, names = planted
    shuffled = np.random.default_rng(0).permutation(y)
    surrogate = ErrorSurrogate(FAST).fit(x, shuffled, names)
    assert surrogate.cv_r2_ < 0.2  # measured -0.38
