"""Tests of harness.data.reference on small extxyz files written by ase."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from harness.data.reference import ReferenceSet, load_reference
from harness.errors import DataError
from harness.files import sha256_file
from harness.reports.export import write_scores_extxyz


def close(actual: object, desired: object, atol: float = 1e-7) -> None:
    """extxyz stores 8 decimals."""
    np.testing.assert_allclose(actual, desired, rtol=1e-7, atol=atol)


SYMBOLS = ["Cr", "Sb", "Sb", "Te", "Te", "Te", "Sb", "Te"]


def make_frame(rng: np.random.Generator, index: int, *, trajectory: str = "md_600K") -> Atoms:
    """A periodic 8-atom Cr/Sb/Te cell on a jittered 2x2x2 grid (no two atoms closer than ~2.5 A)."""
    grid = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)], dtype=float)
    scaled = (grid + 0.5 + rng.uniform(-0.05, 0.05, size=(8, 3))) / 2.0
    atoms = Atoms(SYMBOLS, scaled_positions=scaled, cell=np.diag([6.0, 6.2, 6.4]), pbc=True)
    atoms.info["REF_energy"] = float(rng.normal(-30.0, 1.0))
    atoms.arrays["REF_forces"] = rng.normal(0.0, 0.5, size=(8, 3))
    atoms.info["trajectory"] = trajectory
    atoms.info["frame"] = index
    atoms.info["temperature_K"] = 300 if index % 2 == 0 else 600
    return atoms


def make_frames(n: int = 4, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    return [make_frame(rng, i, trajectory="md_600K" if i < n // 2 else "md_900K") for i in range(n)]


@pytest.fixture(params=["ref.extxyz", "ref.extxyz.gz"])
def ref_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[Atoms]]:
    frames = make_frames()
    path = tmp_path / request.param
    write(path, frames, format="extxyz")
    return path, frames


def write_frames(tmp_path: Path, frames: list[Atoms], name: str = "bad.extxyz") -> Path:
    path = tmp_path / name
    write(path, frames, format="extxyz")
    return path


def test_round_trip(ref_file: tuple[Path, list[Atoms]]) -> None:
    path, frames = ref_file
    ref = load_reference(path)
    assert isinstance(ref, ReferenceSet)
    assert len(ref) == 4
    close(ref.energies_eV, [a.info["REF_energy"] for a in frames])
    close(ref.forces_eV_per_A, np.concatenate([a.arrays["REF_forces"] for a in frames]))
    assert ref.forces_eV_per_A.shape == (32, 3)
    assert ref.n_atoms.tolist() == [8, 8, 8, 8]
    assert ref.symbols.tolist() == SYMBOLS * 4
    assert ref.offsets.tolist() == [0, 8, 16, 24, 32]
    assert ref.frame_indices.tolist() == [0, 1, 2, 3]
    assert ref.elements == ["Cr", "Sb", "Te"]
    assert ref.sha256 == sha256_file(path)
    assert ref.path == path
    parts = ref.per_structure(np.arange(32))
    assert [p.tolist() for p in parts] == [list(range(8 * s, 8 * s + 8)) for s in range(4)]
    for a, b in zip(ref.structures, frames, strict=True):
        assert a.calc is None
        close(a.positions, b.positions, atol=1e-6)
        assert a.info["REF_energy"] == pytest.approx(b.info["REF_energy"])
        close(a.arrays["REF_forces"], b.arrays["REF_forces"])
    assert not ref.energies_eV.flags.writeable
    with pytest.raises(DataError, match="expected 32 rows"):
        ref.per_structure(np.arange(31))


def test_identity_depends_on_selection_and_keys(tmp_path: Path) -> None:
    frames = make_frames()
    for a in frames:
        a.info["other_energy"] = a.info["REF_energy"]
    path = write_frames(tmp_path, frames, "ref.extxyz")
    full = load_reference(path)
    assert full.identity == load_reference(path).identity
    assert len(full.identity) == 64
    assert load_reference(path, max_structures=2).identity != full.identity
    assert load_reference(path, energy_key="other_energy").identity != full.identity


def test_custom_keys(tmp_path: Path) -> None:
    frames = make_frames()
    for a in frames:
        a.info["dft_E"] = a.info.pop("REF_energy")
        a.arrays["dft_F"] = a.arrays.pop("REF_forces")
    path = write_frames(tmp_path, frames, "custom.extxyz")
    ref = load_reference(path, energy_key="dft_E", forces_key="dft_F")
    close(ref.energies_eV, [a.info["dft_E"] for a in frames])
    close(ref.forces_eV_per_A[8:16], frames[1].arrays["dft_F"])


def test_plain_energy_forces_via_calculator(tmp_path: Path) -> None:
    """A DFT extxyz with plain energy=/forces: ase reads them into a SinglePointCalculator."""
    frames = make_frames()
    dft = []
    for a in frames:
        b = a.copy()
        energy = b.info.pop("REF_energy")
        forces = b.arrays.pop("REF_forces")
        b.calc = SinglePointCalculator(b, energy=energy, forces=forces)
        dft.append(b)
    path = write_frames(tmp_path, dft, "dft.extxyz.gz")
    back = read(path, index=0)
    assert back.calc is not None and "energy" not in back.info  # what ase does today
    ref = load_reference(path, energy_key="energy", forces_key="forces")
    close(ref.energies_eV, [a.info["REF_energy"] for a in frames])
    close(ref.forces_eV_per_A, np.concatenate([a.arrays["REF_forces"] for a in frames]))
    for s in ref.structures:
        assert s.calc is None
        assert "energy" in s.info and s.arrays["forces"].shape == (8, 3)


def test_select_scalar_and_list(tmp_path: Path) -> None:
    path = write_frames(tmp_path, make_frames(6), "ref.extxyz")
    ref = load_reference(path, select={"trajectory": "md_900K"})
    assert ref.frame_indices.tolist() == [3, 4, 5]
    ref = load_reference(path, select={"trajectory": ["md_600K", "md_1200K"], "temperature_K": 600})
    assert ref.frame_indices.tolist() == [1]
    ref = load_reference(path, select={"temperature_K": [300, 600]})
    assert ref.frame_indices.tolist() == [0, 1, 2, 3, 4, 5]


def test_select_missing_key_means_not_selected(tmp_path: Path) -> None:
    frames = make_frames(4)
    del frames[0].info["trajectory"]
    path = write_frames(tmp_path, frames, "ref.extxyz")
    assert load_reference(path, select={"trajectory": "md_600K"}).frame_indices.tolist() == [1]


def test_select_empty_lists_values_seen(tmp_path: Path) -> None:
    frames = make_frames(4)
    del frames[3].info["trajectory"]
    path = write_frames(tmp_path, frames, "ref.extxyz")
    with pytest.raises(DataError) as err:
        load_reference(path, select={"trajectory": "md_1500K"})
    text = str(err.value)
    assert "ref.extxyz" in text
    assert "kept none of the 4 frames" in text
    assert "'trajectory': ['md_600K', 'md_900K'] (missing in 1 frame)" in text
    assert "reference.select" in text


def test_max_structures(tmp_path: Path) -> None:
    path = write_frames(tmp_path, make_frames(6), "ref.extxyz")
    assert load_reference(path, max_structures=2).frame_indices.tolist() == [0, 1]
    ref = load_reference(path, select={"trajectory": "md_900K"}, max_structures=2)
    assert ref.frame_indices.tolist() == [3, 4]
    assert load_reference(path, max_structures=100).frame_indices.tolist() == list(range(6))


def test_sha256_match_and_mismatch(tmp_path: Path) -> None:
    path = write_frames(tmp_path, make_frames(2), "ref.extxyz")
    digest = sha256_file(path)
    assert load_reference(path, sha256=digest).sha256 == digest
    wrong = "0" * 64
    with pytest.raises(DataError) as err:
        load_reference(path, sha256=wrong)
    text = str(err.value)
    assert "ref.extxyz" in text and "sha256 mismatch" in text
    assert f"expected {wrong}, actual {digest}" in text
    assert "update the suite's sha256 if the change is intended" in text


def test_sha256_file_streams_large_files(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "big.bin"
    data = np.random.default_rng(1).bytes(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def _error(path: Path, **kwargs: object) -> str:
    with pytest.raises(DataError) as err:
        load_reference(path, **kwargs)  # type: ignore[arg-type]
    return str(err.value)


def test_missing_energy_lists_keys(tmp_path: Path) -> None:
    frames = make_frames(3)
    del frames[2].info["REF_energy"]
    text = _error(write_frames(tmp_path, frames))
    assert "bad.extxyz: frame 2 (trajectory='md_900K', frame=2): no energy label 'REF_energy'" in text
    assert "'temperature_K'" in text and "'REF_forces'" in text
    assert "reference.energy_key" in text


def test_missing_forces_lists_keys(tmp_path: Path) -> None:
    frames = make_frames(3)
    del frames[1].arrays["REF_forces"]
    text = _error(write_frames(tmp_path, frames))
    assert "bad.extxyz: frame 1 (trajectory='md_900K', frame=1): no forces label 'REF_forces'" in text
    assert "info keys [" in text and "'REF_energy'" in text
    assert "reference.forces_key" in text


def test_frame_without_trajectory_info(tmp_path: Path) -> None:
    frames = make_frames(2)
    del frames[1].info["trajectory"], frames[1].info["frame"]
    del frames[1].info["REF_energy"]
    text = _error(write_frames(tmp_path, frames))
    assert "bad.extxyz: frame 1: no energy label" in text


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_energy(tmp_path: Path, value: float) -> None:
    frames = make_frames(2)
    frames[1].info["REF_energy"] = value
    text = _error(write_frames(tmp_path, frames))
    assert "bad.extxyz: frame 1" in text and "energy 'REF_energy' is" in text
    assert str(value) in text


def test_nonfinite_forces(tmp_path: Path) -> None:
    frames = make_frames(2)
    frames[0].arrays["REF_forces"][5, 1] = np.nan
    text = _error(write_frames(tmp_path, frames))
    assert "bad.extxyz: frame 0" in text and "forces 'REF_forces' of atom 5" in text and "nan" in text


def test_wrong_forces_shape(tmp_path: Path) -> None:
    frames = make_frames(2)
    frames[1].arrays["REF_forces"] = np.ones(8)  # one column instead of three
    text = _error(write_frames(tmp_path, frames))
    assert "bad.extxyz: frame 1" in text
    assert "have shape (8,), expected (8, 3)" in text


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.extxyz"
    path.write_text("")
    assert "empty.extxyz: contains no frames" in _error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "nope.extxyz: reference file not found" in _error(tmp_path / "nope.extxyz")


def test_zero_atoms(tmp_path: Path) -> None:
    path = tmp_path / "zero.extxyz"
    write(path, make_frames(1), format="extxyz")
    with open(path, "a") as f:
        f.write('0\nProperties=species:S:1:pos:R:3 REF_energy=1.0 pbc="F F F"\n')
    text = _error(path)
    assert "zero.extxyz: frame 1: structure has zero atoms" in text


def test_overlapping_atoms(tmp_path: Path) -> None:
    frames = make_frames(3)
    frames[2].positions[4] = frames[2].positions[3] + [0.1, 0.2, 0.0]
    text = _error(write_frames(tmp_path, frames))
    assert "bad.extxyz: frame 2 (trajectory='md_900K', frame=2): overlapping atoms" in text
    assert "atom 3 (Te) and atom 4 (Te) are 0.224 A apart" in text


def test_overlapping_atoms_across_periodic_boundary(tmp_path: Path) -> None:
    frames = make_frames(1)
    a = frames[0]
    a.positions[0] = [0.1, 1.0, 1.0]
    a.positions[1] = [a.cell[0, 0] - 0.1, 1.0, 1.0]  # 0.2 A apart through the boundary
    text = _error(write_frames(tmp_path, frames))
    assert "frame 0" in text and "atom 0 (Cr) and atom 1 (Sb) are 0.200 A apart (minimum image)" in text


def test_unselected_frames_are_not_validated(tmp_path: Path) -> None:
    frames = make_frames(4)
    del frames[3].info["REF_energy"]  # md_900K
    path = write_frames(tmp_path, frames)
    assert len(load_reference(path, select={"trajectory": "md_600K"})) == 2


def test_truncated_gzip(tmp_path: Path) -> None:
    path = write_frames(tmp_path, make_frames(6), "cut.extxyz.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    text = _error(path)
    assert "cut.extxyz.gz: truncated or corrupt gzip" in text


def test_not_gzip_with_gz_name(tmp_path: Path) -> None:
    path = tmp_path / "plain.extxyz.gz"
    write(tmp_path / "plain.extxyz", make_frames(1), format="extxyz")
    path.write_bytes((tmp_path / "plain.extxyz").read_bytes())
    assert "plain.extxyz.gz: truncated or corrupt gzip" in _error(path)


def test_malformed_extxyz(tmp_path: Path) -> None:
    path = write_frames(tmp_path, make_frames(2))
    lines = path.read_text().splitlines(keepends=True)
    lines[10 + 5] = "Te 1.0 2.0\n"  # frame 1, atom 3: too few columns
    path.write_text("".join(lines))
    text = _error(path)
    assert "bad.extxyz: frame 1: cannot parse extxyz" in text


@pytest.mark.parametrize("name", ["scores.extxyz", "scores.extxyz.gz"])
def test_write_scores_round_trip(tmp_path: Path, name: str) -> None:
    src = write_frames(tmp_path, make_frames(3), "ref.extxyz")
    ref = load_reference(src)
    rng = np.random.default_rng(3)
    scores = [rng.uniform(size=n) for n in ref.n_atoms]
    ranks = [np.arange(n) for n in ref.n_atoms]
    out = tmp_path / "out" / name
    write_scores_extxyz(out, ref.structures, {"gradcam_candidate": scores, "rank": ranks})
    if name.endswith(".gz"):
        with gzip.open(out, "rb") as f:
            assert f.read(1)
    back = read(out, index=":", format="extxyz")
    assert len(back) == 3
    for b, a, s, r in zip(back, ref.structures, scores, ranks, strict=True):
        close(b.arrays["gradcam_candidate"], s)
        assert b.arrays["rank"].tolist() == r.tolist()
        assert b.get_chemical_symbols() == a.get_chemical_symbols()
        close(b.arrays["REF_forces"], a.arrays["REF_forces"])
    # the written file is itself a valid reference
    again = load_reference(out)
    close(again.energies_eV, ref.energies_eV)
    assert not list(out.parent.glob(".*.tmp"))


def test_write_scores_rejects_wrong_lengths(tmp_path: Path) -> None:
    frames = make_frames(2)
    out = tmp_path / "s.extxyz"
    with pytest.raises(DataError, match=r"s.extxyz: frame 1 .*'g' has shape \(7,\), expected 8 rows"):
        write_scores_extxyz(out, frames, {"g": [np.zeros(8), np.zeros(7)]})
    with pytest.raises(DataError, match="has 1 entries for 2 structures"):
        write_scores_extxyz(out, frames, {"g": [np.zeros(8)]})
    assert not out.exists()


@pytest.mark.parametrize("pbc", [True, False])
def test_direct_overlap_search_finds_what_ase_finds(pbc: bool) -> None:
    """The numpy minimum-image search against ASE's neighbour list, on skewed cells with planted close pairs."""
    from ase.neighborlist import neighbor_list

    from harness.data.reference import MIN_DISTANCE_A, _close_pairs_direct

    rng = np.random.default_rng(3)
    for trial in range(20):
        cell = np.diag(rng.uniform(2.5, 6.0, 3)) + rng.uniform(-1.5, 1.5, (3, 3)) * (trial % 2)
        atoms = Atoms("H12", scaled_positions=rng.uniform(0, 1, (12, 3)), cell=cell, pbc=pbc)
        atoms.positions[3] = atoms.positions[7] + rng.normal(size=3) * 0.2  # a close pair, maybe across a face
        if pbc:
            atoms.wrap()
        i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE_A)
        expected = sorted((int(a), int(b), round(float(x), 9)) for a, b, x in zip(i, j, d, strict=True) if a < b)
        found = sorted(
            (int(a), int(b), round(float(x), 9))
            for a, b, x in zip(*_close_pairs_direct(atoms.positions, cell, pbc), strict=True)
        )
        assert found == expected, trial
