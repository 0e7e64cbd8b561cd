"""SOAP radial channels as distances: dscribe's GTO basis, checked against dscribe's own spectrum."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from harness.explain.descriptors import make_soap, soap_feature_names
from harness.explain.soap_radial import channel_response, describe_feature_distance, gto_functions, radial_channels
from harness.suite.schema import Soap


def test_basis_is_orthonormal_with_r_squared_weight() -> None:
    r = np.linspace(0, 30, 60001)
    g = gto_functions(r, 5.0, 4, 4)
    for l in range(5):  # noqa: E741
        overlap = (g[l] * r**2) @ g[l].T * (r[1] - r[0])
        assert np.allclose(overlap, np.eye(4), atol=1e-4), l


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_response_matches_dscribe_for_a_scanned_dimer(sigma: float) -> None:
    # centre Cr at the origin, one Te at distance r: the Cr density is the centre alone
    # (l = 0 only), so the Cr-Te l=0 features are const(n) * c^Te_{n'0}(r)
    settings = Soap(species=["Cr", "Te"], r_cut_A=5.0, n_max=4, l_max=2, sigma_A=sigma, periodic=False)
    soap = make_soap(settings, average="off")
    names = soap_feature_names(settings)
    distances = np.linspace(0.8, 4.8, 41)
    rows = np.array(
        [soap.create(Atoms("CrTe", positions=[[0, 0, 0], [0, 0, d]]), centers=[0])[0] for d in distances]
    )
    response = channel_response(distances, 5.0, sigma, 4, 2)[0]  # l = 0, (n, r)
    for k in range(4):
        dscribe_curve = rows[:, names.index(f"Cr-Te_n1{k + 1}_l0")]
        corr = np.corrcoef(dscribe_curve, response[k])[0, 1]
        assert abs(corr) > 0.999, (k, corr)


def test_channel_ranges_in_the_bonding_region() -> None:
    # the paper's settings: r_cut 5 A, sigma 1 A; measured l=0 response peaks 3.39, 3.65, 3.12, 2.0 A
    channels = [c for c in radial_channels(5.0, 1.0, 4, 4, r_min_A=2.0) if c.l == 0]
    assert [c.n for c in channels] == [1, 2, 3, 4]
    assert all(2.0 <= c.response_range_A[0] <= c.response_peak_A <= c.response_range_A[1] <= 5.0 for c in channels)
    # sigma = 1 A smears every channel over more than 1 A: SOAP places a distance only coarsely
    assert all(c.response_range_A[1] - c.response_range_A[0] > 1.0 for c in channels)
    # a sharper density separates the channels more
    sharp = [c for c in radial_channels(5.0, 0.3, 4, 4, r_min_A=2.0) if c.l == 0]
    assert np.mean([c.response_range_A[1] - c.response_range_A[0] for c in sharp]) < np.mean(
        [c.response_range_A[1] - c.response_range_A[0] for c in channels]
    )
    text = describe_feature_distance("Cr-Te_n14_l0", radial_channels(5.0, 1.0, 4, 4, r_min_A=2.0))
    assert text == "Cr-Te, l=0, radial channels peaking at 2.0-3.4 A"
