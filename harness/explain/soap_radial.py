"""Where SOAP's radial channels look: each radial index n as a distance range.

dscribe's GTO radial basis (``SOAP.get_basis_gto``, dscribe 2.1 docs "SOAP"):

    g_nl(r) = sum_k beta_{l,n,k} r^l exp(-alpha_{l,k} r^2)

orthonormal on [0, inf) with weight r^2. A neighbour at distance r, smeared as
a Gaussian of width sigma, adds to the coefficients of channel (n, l)

    c_nl(r) ~ int_0^inf g_nl(r') exp(-(r^2 + r'^2) / (2 sigma^2)) i_l(r r' / sigma^2) r'^2 dr'

(i_l: modified spherical Bessel function of the first kind; the radial part of
a Gaussian's expansion in spherical harmonics). :func:`radial_channels` gives,
for each n and l, where |c_nl(r)| peaks for r_min <= r <= r_cut (the distance a
neighbour must have to move that channel most) and the range where it is at
least half its peak: "channel n=3 looks at 2.4-3.9 A". The peak of the bare
basis function g_nl is reported too. ``tests/test_soap_radial.py`` checks the
response against dscribe's own power spectrum of a dimer scanned in r.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import CheckError


@dataclass(frozen=True)
class RadialChannel:
    """Distances (A) one radial channel (n 1-based, l) responds to."""

    n: int
    l: int  # noqa: E741 (the physics name)
    basis_peak_A: float  # argmax |g_nl(r)| on [r_min, r_cut]
    response_peak_A: float  # argmax |c_nl(r)|: where one neighbour moves the channel most
    response_range_A: tuple[float, float]  # where |c_nl(r)| >= half its peak


def gto_basis(r_cut_A: float, n_max: int, l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """dscribe's (alphas (l, k), betas (l, n, k)) for the GTO radial basis."""
    from dscribe.descriptors import SOAP

    soap = SOAP(species=["H"], r_cut=r_cut_A, n_max=n_max, l_max=l_max, rbf="gto")
    return soap.get_basis_gto(r_cut_A, n_max, l_max)


def gto_functions(r: np.ndarray, r_cut_A: float, n_max: int, l_max: int) -> np.ndarray:
    """g_nl(r) on the grid ``r``: shape (l_max + 1, n_max, len(r))."""
    alphas, betas = gto_basis(r_cut_A, n_max, l_max)
    r = np.asarray(r, dtype=np.float64)
    out = np.zeros((l_max + 1, n_max, len(r)))
    for l in range(l_max + 1):  # noqa: E741
        primitives = r[None, :] ** l * np.exp(-alphas[l][:, None] * r[None, :] ** 2)  # (k, r)
        out[l] = betas[l] @ primitives
    return out


def channel_response(r: np.ndarray, r_cut_A: float, sigma_A: float, n_max: int, l_max: int) -> np.ndarray:
    """c_nl(r) (up to a constant per l): shape (l_max + 1, n_max, len(r))."""
    from scipy.special import ive

    if not sigma_A > 0:
        raise CheckError(f"sigma_A={sigma_A} must be > 0")
    grid = np.linspace(1e-6, r_cut_A + 8 * sigma_A + 4.0, 4000)
    g = gto_functions(grid, r_cut_A, n_max, l_max)  # (l, n, r')
    r = np.asarray(r, dtype=np.float64)[:, None]
    x = r * grid[None, :] / sigma_A**2
    out = np.zeros((l_max + 1, n_max, r.shape[0]))
    step = grid[1] - grid[0]
    for l in range(l_max + 1):  # noqa: E741
        # exp(-(r^2 + r'^2)/2s^2) i_l(x) = exp(-(r - r')^2/2s^2) * i_l(x) e^{-x}; i_l(x) = sqrt(pi/2x) I_{l+1/2}(x)
        kernel = np.exp(-((r - grid[None, :]) ** 2) / (2 * sigma_A**2)) * np.sqrt(np.pi / (2 * x)) * ive(l + 0.5, x)
        out[l] = (g[l] * grid[None, :] ** 2) @ kernel.T * step
    return out


def radial_channels(
    r_cut_A: float, sigma_A: float, n_max: int, l_max: int, *, r_min_A: float = 1.5
) -> list[RadialChannel]:
    """Every (n, l) channel of the GTO basis with where it peaks for r_min_A <= r <= r_cut_A.

    ``r_min_A`` excludes distances no neighbour has (below a bond length):
    Löwdin-orthonormalised GTOs are not localised, and several l=0 channels
    respond most to a neighbour near the centre, where there is none.
    """
    if not r_cut_A > 0 or n_max < 1 or l_max < 0 or not 0 <= r_min_A < r_cut_A:
        raise CheckError(
            f"radial_channels needs r_cut_A > r_min_A >= 0, n_max >= 1, l_max >= 0; "
            f"got {r_cut_A}, {r_min_A}, {n_max}, {l_max}"
        )
    r = np.linspace(max(r_min_A, 0.01), r_cut_A, 500)
    basis = np.abs(gto_functions(r, r_cut_A, n_max, l_max))
    response = np.abs(channel_response(r, r_cut_A, sigma_A, n_max, l_max))
    out = []
    for l in range(l_max + 1):  # noqa: E741
        for n in range(n_max):
            resp = response[l, n]
            peak = int(np.argmax(resp))
            above = np.flatnonzero(resp >= 0.5 * resp[peak])
            # the contiguous run around the peak
            lo = hi = peak
            while lo - 1 in above:
                lo -= 1
            while hi + 1 in above:
                hi += 1
            out.append(
                RadialChannel(
                    n=n + 1,
                    l=l,
                    basis_peak_A=float(r[int(np.argmax(basis[l, n]))]),
                    response_peak_A=float(r[peak]),
                    response_range_A=(float(r[lo]), float(r[hi])),
                )
            )
    return out


def describe_feature_distance(name: str, channels: list[RadialChannel]) -> str:
    """'Cr-Te_n13_l3' -> 'Cr-Te, l=3, radial channels peaking at 1.2 and 3.4 A'."""
    from harness.explain.descriptors import parse_feature_name

    info = parse_feature_name(name)
    by = {(c.n, c.l): c for c in channels}
    peaks = []
    for n in (info.n, info.n_prime):
        if (n, info.l) not in by:
            raise CheckError(f"{name}: no radial channel n={n}, l={info.l} in the given basis")
        peaks.append(by[(n, info.l)].response_peak_A)
    lo, hi = min(peaks), max(peaks)
    where = f"{lo:.1f} A" if abs(hi - lo) < 0.05 else f"{lo:.1f}-{hi:.1f} A"
    return f"{'-'.join(info.pair)}, l={info.l}, radial channels peaking at {where}"
