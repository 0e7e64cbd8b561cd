"""Pure structure builders for the Cr-doped Sb2Te3 reference data (no CHGNet).

Everything here is deterministic given its arguments (random choices take an
explicit ``numpy.random.Generator``), so the tests can check known answers.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from ase import Atoms
from ase.geometry import get_distances
from ase.spacegroup import crystal

# Sb2Te3, R-3m (166), hexagonal setting.
SB2TE3_A: float = 4.264
SB2TE3_C: float = 30.458
SB_Z: float = 0.3988
TE1_Z: float = 0.7872

Sites = Literal["substitutional", "interstitial", "mixed", "none"]
Arrangement = Literal["clustered", "isolated", "single", "none"]


def sb2te3_conventional() -> Atoms:
    """The 15-atom hexagonal conventional cell of Sb2Te3 (Sb6Te9)."""
    return crystal(
        ["Te", "Sb", "Te"],
        basis=[(0.0, 0.0, 0.0), (0.0, 0.0, SB_Z), (0.0, 0.0, TE1_Z)],
        spacegroup=166,
        cellpar=[SB2TE3_A, SB2TE3_A, SB2TE3_C, 90, 90, 120],
        primitive_cell=False,
    )


def sb2te3_primitive() -> Atoms:
    """The 5-atom rhombohedral primitive cell of Sb2Te3."""
    return crystal(
        ["Te", "Sb", "Te"],
        basis=[(0.0, 0.0, 0.0), (0.0, 0.0, SB_Z), (0.0, 0.0, TE1_Z)],
        spacegroup=166,
        cellpar=[SB2TE3_A, SB2TE3_A, SB2TE3_C, 90, 90, 120],
        primitive_cell=True,
    )


def _refold(source: Atoms, cell: np.ndarray, n_expected: int) -> Atoms:
    """Fold the atoms of a periodic ``source`` into a commensurate ``cell``.

    The source is replicated generously, every image is wrapped into ``cell``
    and duplicates (within 1e-4 in fractional coordinates) are removed.
    """
    reps = (8, 8, 3)
    big = source.repeat(reps)
    big.translate(-np.asarray(source.cell).T @ np.array([4, 4, 1], float))
    frac = np.linalg.solve(np.asarray(cell).T, big.positions.T).T
    frac = np.mod(np.round(frac, 8), 1.0)
    frac[np.isclose(frac, 1.0, atol=1e-6)] = 0.0
    keys: dict[tuple[int, int, int], int] = {}
    for i, f in enumerate(frac):
        key = tuple(int(round(x * 1e4)) % 10000 for x in f)
        keys.setdefault(key, i)  # type: ignore[arg-type]
    idx = sorted(keys.values())
    if len(idx) != n_expected:
        raise RuntimeError(
            f"refolding gave {len(idx)} atoms, expected {n_expected}: the target cell "
            "is not commensurate with the source lattice"
        )
    out = Atoms(
        symbols=[big[i].symbol for i in idx],
        scaled_positions=frac[idx],
        cell=cell,
        pbc=True,
    )
    # Order by height then by symbol for a stable, readable layout.
    order = np.lexsort((out.positions[:, 1], out.positions[:, 0], np.round(out.positions[:, 2], 3)))
    return out[order]


def sb2te3_doped_host() -> Atoms:
    """The undoped 120-atom host: two quintuple layers, 4x3 in plane.

    Cell vectors are 4*a1, 3*a2 and two rhombohedral centring translations
    2*(2/3 a1 + 1/3 a2 + 1/3 c), which span exactly two QLs with ABC stacking.
    """
    conv = sb2te3_conventional()
    a1, a2, c = np.asarray(conv.cell)
    cell = np.array([4 * a1, 3 * a2, 2 * (2.0 / 3.0 * a1 + 1.0 / 3.0 * a2 + 1.0 / 3.0 * c)])
    return _refold(conv, cell, 120)


def te_layers(atoms: Atoms, tol: float = 0.3) -> list[float]:
    """Heights (z, A) of the Te atomic planes, sorted, each plane's mean."""
    z = np.sort(atoms.positions[np.array(atoms.get_chemical_symbols()) == "Te", 2])
    layers: list[list[float]] = []
    for zi in z:
        if layers and zi - layers[-1][-1] < tol:
            layers[-1].append(float(zi))
        else:
            layers.append([float(zi)])
    return [float(np.mean(layer)) for layer in layers]


def vdw_gap_centres(atoms: Atoms) -> list[float]:
    """Heights of the van der Waals gap mid-planes of a layered Sb-Te cell.

    A gap is a pair of consecutive atomic planes (periodically in the cell's
    third direction) that are both Te with no Sb between them.
    """
    sym = np.array(atoms.get_chemical_symbols())
    host = sym != "Cr"
    z = atoms.positions[host, 2]
    s = sym[host]
    order = np.argsort(z)
    z, s = z[order], s[order]
    planes: list[tuple[float, str]] = []
    for zi, si in zip(z, s):
        if planes and zi - planes[-1][0] < 0.3 and planes[-1][1] == si:
            continue
        planes.append((float(zi), str(si)))
    height = float(np.asarray(atoms.cell)[2, 2])
    gaps: list[float] = []
    for k, (zk, sk) in enumerate(planes):
        zn, sn = planes[(k + 1) % len(planes)]
        if k + 1 == len(planes):
            zn += height
        if sk == "Te" and sn == "Te":
            gaps.append(float(((zk + zn) / 2.0) % height))
    return sorted(gaps)


def octahedral_gap_sites(host: Atoms) -> np.ndarray:
    """Cartesian positions of the octahedral holes in every vdW gap.

    For each gap mid-plane, the three ABC stacking positions (0,0), (2/3,1/3),
    (1/3,2/3) of the hexagonal in-plane lattice are tried; the octahedral one is
    the position above neither adjacent Te plane (largest distance to the host).
    """
    conv = sb2te3_conventional()
    a1, a2 = np.asarray(conv.cell)[0], np.asarray(conv.cell)[1]
    offsets = [np.zeros(3), 2 / 3 * a1 + 1 / 3 * a2, 1 / 3 * a1 + 2 / 3 * a2]
    sites: list[np.ndarray] = []
    for zg in vdw_gap_centres(host):
        best: tuple[float, list[np.ndarray]] | None = None
        for off in offsets:
            cand = [off + i * a1 + j * a2 + np.array([0, 0, zg]) for i in range(4) for j in range(3)]
            _, d = get_distances(np.array(cand), host.positions, cell=host.cell, pbc=True)
            dmin = float(d.min())
            if best is None or dmin > best[0]:
                best = (dmin, cand)
        assert best is not None
        sites.extend(best[1])
    out = np.array(sites)
    frac = np.mod(np.linalg.solve(np.asarray(host.cell).T, out.T).T, 1.0)
    return frac @ np.asarray(host.cell)


def _choose(
    pos: np.ndarray,
    kinds: np.ndarray,
    quota: dict[int, int],
    arrangement: str,
    cell: np.ndarray,
    rng: np.random.Generator,
) -> list[int]:
    """Pick candidate indices meeting ``quota`` (kind -> count).

    clustered: start at a random candidate, then repeatedly add the candidate
    with the smallest summed distance to those chosen. isolated: farthest-point
    sampling (maximise the minimum distance to those chosen).
    """
    _, d = get_distances(pos, pos, cell=cell, pbc=True)
    left = dict(quota)
    allowed = [i for i in range(len(pos)) if left.get(int(kinds[i]), 0) > 0]
    first = int(rng.choice(allowed))
    chosen = [first]
    left[int(kinds[first])] -= 1
    while sum(left.values()) > 0:
        cand = [i for i in range(len(pos)) if i not in chosen and left.get(int(kinds[i]), 0) > 0]
        if arrangement == "clustered":
            score = np.array([d[i, chosen].sum() for i in cand])
            best = cand[int(np.argmin(score + 1e-9 * rng.random(len(cand))))]
        else:
            score = np.array([d[i, chosen].min() for i in cand])
            best = cand[int(np.argmax(score + 1e-9 * rng.random(len(cand))))]
        chosen.append(best)
        left[int(kinds[best])] -= 1
    return chosen


def doped_cell(n_cr: int, sites: str, arrangement: str, rng: np.random.Generator) -> Atoms:
    """The 120-atom host with ``n_cr`` Cr dopants.

    sites: "substitutional" (Cr replaces Sb), "interstitial" (Cr added in
    octahedral vdW-gap holes), "mixed" (ceil(n/2) substitutional, rest
    interstitial; needs n >= 2) or "none" (n_cr = 0).
    arrangement: "clustered", "isolated" or "single" (n_cr = 1) / "none".
    """
    host = sb2te3_doped_host()
    if n_cr == 0:
        if sites != "none":
            raise ValueError(f"n_cr=0 needs sites='none', got {sites!r}")
        atoms = host
        arrangement = "none"
    else:
        if not 1 <= n_cr <= 7:
            raise ValueError(f"n_cr must be in 0..7, got {n_cr}")
        if (n_cr == 1) != (arrangement == "single"):
            raise ValueError(
                f"arrangement 'single' is for n_cr=1 only (got n_cr={n_cr}, {arrangement!r})"
            )
        if arrangement not in ("clustered", "isolated", "single"):
            raise ValueError(f"unknown arrangement {arrangement!r}")
        if sites == "mixed" and n_cr < 2:
            raise ValueError("sites='mixed' needs n_cr >= 2")
        n_sub = {"substitutional": n_cr, "interstitial": 0, "mixed": (n_cr + 1) // 2}.get(sites)
        if n_sub is None:
            raise ValueError(f"unknown sites {sites!r}: use substitutional|interstitial|mixed")
        n_int = n_cr - n_sub
        sb_idx = np.where(np.array(host.get_chemical_symbols()) == "Sb")[0]
        gap = octahedral_gap_sites(host)
        pos = np.vstack([host.positions[sb_idx], gap])
        kinds = np.array([0] * len(sb_idx) + [1] * len(gap))
        chosen = _choose(pos, kinds, {0: n_sub, 1: n_int}, arrangement, np.asarray(host.cell), rng)
        atoms = host.copy()
        syms = atoms.get_chemical_symbols()
        for c in chosen:
            if kinds[c] == 0:
                syms[int(sb_idx[c])] = "Cr"
        atoms.set_chemical_symbols(syms)
        for c in chosen:
            if kinds[c] == 1:
                atoms += Atoms("Cr", positions=[pos[c]])
    atoms.info.update(
        config_type="doped", n_Cr=int(n_cr), cr_sites=sites, cr_arrangement=arrangement
    )
    return atoms


def min_distance(atoms: Atoms) -> float:
    """Smallest interatomic distance (A) under the minimum-image convention."""
    if len(atoms) < 2:
        return float("inf")
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    dmin = float(d.min())
    # also the self-image distance of short cell vectors
    if atoms.pbc.all():
        dmin = min(dmin, float(np.linalg.norm(atoms.cell, axis=1).min()))
    return dmin


# --------------------------------------------------------------------------
# Pre-training families (small cells, <= 60 atoms), single points only.
# --------------------------------------------------------------------------

MAX_PRETRAIN_ATOMS: int = 60
MIN_PAIR_DISTANCE: float = 1.8


def sb_a7() -> Atoms:
    """Elemental Sb, A7 (R-3m), hexagonal setting, 6 atoms."""
    return crystal("Sb", [(0, 0, 0.2335)], spacegroup=166, cellpar=[4.308, 4.308, 11.273, 90, 90, 120])


def te_trigonal() -> Atoms:
    """Elemental Te, trigonal P3_121 (152), 3 atoms."""
    return crystal("Te", [(0.2636, 0, 1 / 3)], spacegroup=152, cellpar=[4.457, 4.457, 5.929, 90, 90, 120])


def cr_bcc() -> Atoms:
    """Elemental Cr, bcc, cubic 2-atom cell."""
    return crystal("Cr", [(0, 0, 0)], spacegroup=229, cellpar=[2.884, 2.884, 2.884, 90, 90, 90])


def nias(metal: str, anion: str, a: float, c: float) -> Atoms:
    """NiAs-type MX (P6_3/mmc): M 2a (0,0,0), X 2c (1/3,2/3,1/4); 4 atoms."""
    return crystal(
        [metal, anion], [(0, 0, 0), (1 / 3, 2 / 3, 0.25)], spacegroup=194,
        cellpar=[a, a, c, 90, 90, 120],
    )


def sb2te3_one_ql_slab(nx: int, ny: int, vacuum: float = 12.0) -> Atoms:
    """One Sb2Te3 quintuple layer (nx x ny in plane) with ``vacuum`` A of vacuum."""
    conv = sb2te3_conventional()
    z = conv.positions[:, 2]
    gaps = vdw_gap_centres(conv)
    lo, hi = gaps[0], gaps[1]
    keep = (z > lo) & (z < hi)
    ql = conv[keep]
    ql.positions[:, 2] -= ql.positions[:, 2].min()
    thick = float(ql.positions[:, 2].max())
    cell = np.asarray(conv.cell).copy()
    cell[2] = [0.0, 0.0, thick + vacuum]
    ql.set_cell(cell, scale_atoms=False)
    ql.wrap()
    ql.pbc = (True, True, True)
    slab = ql.repeat((nx, ny, 1))
    slab.positions[:, 2] += vacuum / 2.0
    return slab


def random_strain(atoms: Atoms, rng: np.random.Generator, max_strain: float) -> Atoms:
    """Apply a random symmetric strain with components uniform in +-max_strain."""
    eps = rng.uniform(-max_strain, max_strain, (3, 3))
    eps = 0.5 * (eps + eps.T)
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    return out


PRETRAIN_FAMILIES: tuple[str, ...] = (
    "sb2te3_bulk_primitive",
    "sb2te3_bulk_conventional",
    "sb_a7",
    "te_trigonal",
    "cr_bcc",
    "crte_nias",
    "crsb_nias",
    "sb2te3_slab",
    "sb2te3_vacancy_sb",
    "sb2te3_vacancy_te",
)


def _pretrain_base(family: str, rng: np.random.Generator) -> Atoms:
    """The unperturbed cell of one family (supercell size drawn from ``rng``)."""
    def pick(options: list[tuple[int, int, int]]) -> tuple[int, int, int]:
        return options[int(rng.integers(len(options)))]

    if family == "sb2te3_bulk_primitive":
        return sb2te3_primitive().repeat(pick([(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2)]))
    if family == "sb2te3_bulk_conventional":
        return sb2te3_conventional().repeat(pick([(1, 1, 1), (2, 1, 1), (2, 2, 1)]))
    if family == "sb_a7":
        return sb_a7().repeat(pick([(1, 1, 1), (2, 2, 1), (2, 2, 2), (3, 3, 1)]))
    if family == "te_trigonal":
        return te_trigonal().repeat(pick([(2, 2, 1), (2, 2, 2), (3, 3, 2), (3, 3, 1)]))
    if family == "cr_bcc":
        return cr_bcc().repeat(pick([(2, 2, 2), (3, 3, 3), (2, 2, 3)]))
    if family == "crte_nias":
        return nias("Cr", "Te", 3.981, 6.22).repeat(pick([(1, 1, 1), (2, 2, 1), (2, 2, 2), (3, 3, 1)]))
    if family == "crsb_nias":
        return nias("Cr", "Sb", 4.122, 5.464).repeat(pick([(1, 1, 1), (2, 2, 1), (2, 2, 2), (3, 3, 1)]))
    if family == "sb2te3_slab":
        n = pick([(1, 1, 1), (2, 2, 1), (3, 3, 1)])
        return sb2te3_one_ql_slab(n[0], n[1])
    if family in ("sb2te3_vacancy_sb", "sb2te3_vacancy_te"):
        bulk = sb2te3_conventional().repeat(pick([(2, 1, 1), (2, 2, 1)]))
        el = "Sb" if family.endswith("_sb") else "Te"
        idx = np.where(np.array(bulk.get_chemical_symbols()) == el)[0]
        del bulk[int(rng.choice(idx))]
        return bulk
    raise ValueError(f"unknown pretrain family {family!r}; known: {', '.join(PRETRAIN_FAMILIES)}")


def pretrain_structure(family: str, rng: np.random.Generator, max_tries: int = 100) -> Atoms:
    """One strained (+-3%) and rattled (sigma 0.03-0.1 A) structure of ``family``.

    Draws that put any pair closer than MIN_PAIR_DISTANCE are rejected and
    redrawn (up to ``max_tries``).
    """
    strain_max = 0.03
    for _ in range(max_tries):
        base = _pretrain_base(family, rng)
        if len(base) > MAX_PRETRAIN_ATOMS:
            raise RuntimeError(f"{family}: {len(base)} atoms > {MAX_PRETRAIN_ATOMS}")
        if family == "sb2te3_slab":
            # strain only in plane: the vacuum direction carries no stress
            eps = rng.uniform(-0.03, 0.03, (2, 2))
            eps = 0.5 * (eps + eps.T)
            m = np.eye(3)
            m[:2, :2] += eps
            atoms = base.copy()
            atoms.set_cell(np.asarray(base.cell) @ m, scale_atoms=True)
        else:
            atoms = random_strain(base, rng, strain_max)
        sigma = float(rng.uniform(0.03, 0.1))
        atoms.positions += rng.normal(0.0, sigma, atoms.positions.shape)
        atoms.wrap()
        if min_distance(atoms) >= MIN_PAIR_DISTANCE:
            atoms.info.clear()  # drop ase.spacegroup's 'spacegroup'/'unit_cell' entries
            atoms.info.update(config_type=family, rattle_A=sigma, max_strain=strain_max)
            return atoms
    raise RuntimeError(f"{family}: no draw without a pair < {MIN_PAIR_DISTANCE} A in {max_tries} tries")
