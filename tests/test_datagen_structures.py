"""Fast known-answer tests of the reference-data structure builders (no CHGNet)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms


def _generator_structures():
    """The example's generator lives in reference_data/, outside the harness package: load it by path."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "reference_data" / "cr_sb2te3" / "generator"
    name = "cr_sb2te3_generator"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.structures")


_structures = _generator_structures()
PRETRAIN_FAMILIES = _structures.PRETRAIN_FAMILIES
doped_cell = _structures.doped_cell
min_distance = _structures.min_distance
octahedral_gap_sites = _structures.octahedral_gap_sites
pretrain_structure = _structures.pretrain_structure
sb2te3_conventional = _structures.sb2te3_conventional
sb2te3_doped_host = _structures.sb2te3_doped_host
sb2te3_one_ql_slab = _structures.sb2te3_one_ql_slab
vdw_gap_centres = _structures.vdw_gap_centres


def _symbols(atoms: Atoms) -> np.ndarray:
    return np.array(atoms.get_chemical_symbols())


@pytest.fixture(scope="module")
def host() -> Atoms:
    return sb2te3_doped_host()


def test_conventional_cell_composition() -> None:
    conv = sb2te3_conventional()
    assert len(conv) == 15
    assert conv.get_chemical_formula() == "Sb6Te9"


def test_host_counts_and_cell(host: Atoms) -> None:
    assert len(host) == 120
    sym = _symbols(host)
    assert (sym == "Sb").sum() == 48 and (sym == "Te").sum() == 72
    assert host.pbc.all()
    a = 4.264
    lengths = np.linalg.norm(host.cell, axis=1)
    assert lengths[0] == pytest.approx(4 * a) and lengths[1] == pytest.approx(3 * a)
    # third vector spans two QLs: its height is 2/3 of the hexagonal c
    assert host.cell[2, 2] == pytest.approx(2 / 3 * 30.458)
    assert host.get_volume() == pytest.approx(8 * sb2te3_conventional().get_volume())


def test_host_two_vdw_gaps(host: Atoms) -> None:
    gaps = vdw_gap_centres(host)
    assert len(gaps) == 2
    assert gaps[1] - gaps[0] == pytest.approx(host.cell[2, 2] / 2, abs=1e-6)


def test_every_sb_octahedral_and_te_distances(host: Atoms) -> None:
    d = host.get_all_distances(mic=True)
    sym = _symbols(host)
    sb, te = np.where(sym == "Sb")[0], np.where(sym == "Te")[0]
    sb_te = d[np.ix_(sb, te)]
    assert ((sb_te < 3.4).sum(axis=1) == 6).all()  # 6 Te neighbours each
    nn = np.sort(sb_te, axis=1)[:, :6]
    assert nn.min() > 2.95 and nn.max() < 3.3
    # Te-Te across the van der Waals gap: ~3.7 A, never short
    te_te = d[np.ix_(te, te)] + np.eye(len(te)) * 99
    assert te_te.min() > 3.5


def test_no_short_pairs_across_boundaries(host: Atoms) -> None:
    assert min_distance(host) > 2.5
    # the same structure replicated must keep the same nearest distances
    big = host.repeat((2, 2, 2))
    assert min_distance(big) == pytest.approx(min_distance(host), abs=1e-6)


def test_octahedral_gap_sites(host: Atoms) -> None:
    sites = octahedral_gap_sites(host)
    assert sites.shape == (24, 3)  # 12 holes per gap, two gaps
    from ase.geometry import get_distances

    _, d = get_distances(sites, host.positions, cell=host.cell, pbc=True)
    nn = np.sort(d, axis=1)
    assert np.allclose(nn[:, :6], nn[0, 0], atol=1e-6)  # 6 equidistant Te
    assert 2.8 <= nn[0, 0] <= 3.0
    assert (_symbols(host)[np.argsort(d, axis=1)[:, :6]] == "Te").all()


@pytest.mark.parametrize("n_cr", range(1, 8))
@pytest.mark.parametrize("sites", ["substitutional", "interstitial", "mixed"])
@pytest.mark.parametrize("arrangement", ["clustered", "isolated"])
def test_doped_cells(n_cr: int, sites: str, arrangement: str) -> None:
    if n_cr == 1:
        if sites == "mixed" or arrangement == "isolated":
            pytest.skip("n_Cr=1 exists only as 'single' with one site type")
        arrangement = "single"
    atoms = doped_cell(n_cr, sites, arrangement, np.random.default_rng(n_cr))
    sym = _symbols(atoms)
    n_int = {"substitutional": 0, "interstitial": n_cr, "mixed": n_cr // 2}[sites]
    assert (sym == "Cr").sum() == n_cr
    assert len(atoms) == 120 + n_int
    assert (sym == "Sb").sum() == 48 - (n_cr - n_int)
    assert (sym == "Te").sum() == 72
    assert min_distance(atoms) > 2.0
    assert atoms.info["config_type"] == "doped"
    assert atoms.info["n_Cr"] == n_cr
    assert atoms.info["cr_sites"] == sites and atoms.info["cr_arrangement"] == arrangement


def _cr_spread(atoms: Atoms) -> float:
    cr = np.where(_symbols(atoms) == "Cr")[0]
    d = atoms.get_all_distances(mic=True)[np.ix_(cr, cr)]
    return float(d[np.triu_indices(len(cr), 1)].mean())


@pytest.mark.parametrize("sites", ["substitutional", "interstitial", "mixed"])
def test_clustered_tighter_than_isolated(sites: str) -> None:
    rng = np.random.default_rng(0)
    clu = doped_cell(4, sites, "clustered", rng)
    iso = doped_cell(4, sites, "isolated", rng)
    assert _cr_spread(clu) < _cr_spread(iso)


def test_doped_cell_is_deterministic() -> None:
    a = doped_cell(5, "mixed", "isolated", np.random.default_rng(3))
    b = doped_cell(5, "mixed", "isolated", np.random.default_rng(3))
    assert np.array_equal(a.positions, b.positions) and list(a.numbers) == list(b.numbers)


def test_bad_dopant_requests() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        doped_cell(8, "substitutional", "clustered", rng)
    with pytest.raises(ValueError):
        doped_cell(1, "mixed", "single", rng)
    with pytest.raises(ValueError):
        doped_cell(3, "substitutional", "single", rng)


def test_undoped() -> None:
    atoms = doped_cell(0, "none", "none", np.random.default_rng(0))
    assert len(atoms) == 120 and atoms.info["n_Cr"] == 0


def test_one_ql_slab() -> None:
    slab = sb2te3_one_ql_slab(3, 3)
    assert len(slab) == 45 and slab.get_chemical_formula() == "Sb18Te27"
    z = slab.positions[:, 2]
    assert slab.cell[2, 2] - (z.max() - z.min()) == pytest.approx(12.0)


@pytest.mark.parametrize("family", PRETRAIN_FAMILIES)
def test_pretrain_families(family: str) -> None:
    rng = np.random.default_rng(11)
    for _ in range(3):
        atoms = pretrain_structure(family, rng)
        assert 1 < len(atoms) <= 60
        assert min_distance(atoms) >= 1.8
        assert atoms.info["config_type"] == family
        assert set(atoms.info) == {"config_type", "rattle_A", "max_strain"}
        assert set(atoms.get_chemical_symbols()) <= {"Sb", "Te", "Cr"}
