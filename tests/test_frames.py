"""harness.data.frames: an extxyz file parsed once, from memory, cached as arrays by its sha256."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from harness.cache import ArrayCache
from harness.data import frames
from harness.data.reference import load_reference

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "reference_data" / "cr_sb2te3" / "test.extxyz.gz"


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    frames.forget()
    yield
    frames.forget()


def _frames(n: int = 5, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        grid = np.array([[a, b, c] for a in range(2) for b in range(2) for c in range(2)], dtype=float)
        scaled = (grid + 0.5 + rng.uniform(-0.05, 0.05, size=(8, 3))) / 2.0
        atoms = Atoms(["Cr", "Sb", "Sb", "Te", "Te", "Te", "Sb", "Te"], scaled_positions=scaled,
                      cell=np.diag([6.0, 6.2, 6.4]) + rng.uniform(0, 0.3, (3, 3)), pbc=[True, True, i % 2 == 0])
        atoms.info.update(REF_energy=float(rng.normal(-30, 1)), frame=i, temperature_K=300.0 * (1 + i % 3),
                          trajectory=f"t{i % 2}", hot=bool(i % 2), REF_stress=rng.normal(size=6))
        atoms.arrays["REF_forces"] = rng.normal(0.0, 0.5, size=(8, 3))
        atoms.arrays["tag_int"] = np.arange(8) + i
        out.append(atoms)
    return out


def _parse(path: Path, cache: ArrayCache | None = None) -> frames.ParsedFrames:
    data = path.read_bytes()
    return frames.parse_frames(path, data, hashlib.sha256(data).hexdigest(), cache)


def _same_atoms(a: Atoms, b: Atoms) -> None:
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell.array, b.cell.array)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    assert sorted(a.info) == sorted(b.info)
    for key, value in a.info.items():
        np.testing.assert_array_equal(value, b.info[key], err_msg=key)
        assert type(np.asarray(value).item(0) if np.ndim(value) else value) is type(
            np.asarray(b.info[key]).item(0) if np.ndim(b.info[key]) else b.info[key]), key
    assert sorted(a.arrays) == sorted(b.arrays)
    for key, value in a.arrays.items():
        np.testing.assert_array_equal(value, b.arrays[key], err_msg=key)
        assert value.dtype == b.arrays[key].dtype, key


@pytest.mark.parametrize("name", ["ref.extxyz", "ref.extxyz.gz"])
def test_frames_equal_what_ase_reads_and_survive_the_cache(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write(path, _frames(), format="extxyz")
    expected = read(path, ":", format="extxyz")
    cache = ArrayCache(tmp_path / "cache")
    parsed = _parse(path, cache)
    assert parsed.error is None and len(parsed) == len(expected)
    for i, atoms in enumerate(expected):
        _same_atoms(parsed.atoms(i), atoms)
    stored = list((tmp_path / "cache" / "reference-frames").glob("*.npz"))
    assert len(stored) == 1
    frames.forget()  # a new process: the arrays come from the cache, not the text
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    again = frames.parse_frames(path, b"no text: the arrays must come from the cache", sha, cache)
    for i, atoms in enumerate(expected):
        _same_atoms(again.atoms(i), atoms)


def test_calculator_results_become_info_and_arrays(tmp_path: Path) -> None:
    atoms_list = _frames(2)
    for a in atoms_list:
        a.calc = SinglePointCalculator(a, energy=-1.5, forces=np.ones((8, 3)), stress=np.arange(6.0))
    path = tmp_path / "dft.extxyz"
    write(path, atoms_list, format="extxyz")
    parsed = _parse(path, ArrayCache(tmp_path / "c"))
    frames.forget()
    for p in (parsed, _parse(path, ArrayCache(tmp_path / "c"))):
        atoms = p.atoms(1)
        assert atoms.calc is None
        assert atoms.info["energy"] == -1.5
        np.testing.assert_array_equal(atoms.arrays["forces"], np.ones((8, 3)))


def test_memory_shares_one_parse_and_copies_are_independent(tmp_path: Path) -> None:
    path = tmp_path / "ref.extxyz"
    write(path, _frames(), format="extxyz")
    first, second = _parse(path), _parse(path)
    assert first is second
    a = first.atoms(0)
    original = a.positions.copy()
    a.positions += 1.0
    a.info["frame"] = 99
    np.testing.assert_array_equal(first.atoms(0).positions, original)
    assert first.atoms(0).info["frame"] == 0


def test_corrupt_cache_entry_is_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "ref.extxyz.gz"
    write(path, _frames(), format="extxyz")
    cache = ArrayCache(tmp_path / "cache")
    _parse(path, cache)
    (entry,) = (tmp_path / "cache" / "reference-frames").glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:100])
    frames.forget()
    with pytest.warns(UserWarning, match="corrupt"):
        parsed = _parse(path, cache)
    assert len(parsed) == 5


def test_per_atom_array_in_some_frames_only_is_read_but_not_cached(tmp_path: Path) -> None:
    atoms_list = _frames(3)
    atoms_list[1].arrays["extra"] = np.zeros(8)
    path = tmp_path / "mixed.extxyz"
    write(path, atoms_list, format="extxyz")
    cache = ArrayCache(tmp_path / "cache")
    parsed = _parse(path, cache)
    assert "extra" in parsed.atoms(1).arrays and "extra" not in parsed.atoms(0).arrays
    assert not (tmp_path / "cache" / "reference-frames").exists()


def test_parse_error_keeps_the_frames_before_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.extxyz"
    write(path, _frames(3), format="extxyz")
    lines = path.read_text().splitlines(keepends=True)
    lines[2 * 10 + 4] = "Te 1.0\n"  # frame 2
    path.write_text("".join(lines))
    parsed = _parse(path, ArrayCache(tmp_path / "cache"))
    assert len(parsed) == 2 and parsed.error.startswith("frame 2: cannot parse extxyz")
    assert not (tmp_path / "cache" / "reference-frames").exists()  # never cache a partial parse
    # max_structures stops before the broken frame, as a streaming reader would
    assert len(load_reference(path, max_structures=2)) == 2
    with pytest.raises(Exception, match="bad.extxyz: frame 2: cannot parse extxyz"):
        load_reference(path)


def test_shipped_reference_parses_from_memory_faster_than_ase_on_gzip(tmp_path: Path) -> None:
    """The lever of issue 17: the same frames, read several times faster than ase.io.read on the .gz."""
    start = time.perf_counter()
    expected = read(SHIPPED, "0:40", format="extxyz")  # a prefix: ase's cost grows with each seek
    ase_seconds = time.perf_counter() - start
    start = time.perf_counter()
    parsed = _parse(SHIPPED)
    ours = time.perf_counter() - start
    assert len(parsed) == 300
    for i in (0, 17, 39):
        _same_atoms(parsed.atoms(i), expected[i])
    assert ours < ase_seconds * 300 / 40  # the whole file, in less time than ase needs per frame on the prefix


def test_load_reference_uses_the_cache_and_gives_the_same_set(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "cache")
    cold = load_reference(SHIPPED, cache=cache, select={"temperature_K": 600.0})
    frames.forget()
    warm = load_reference(SHIPPED, cache=cache, select={"temperature_K": 600.0})
    assert cold.identity == warm.identity and len(cold) == len(warm) > 0
    np.testing.assert_array_equal(cold.forces_eV_per_A, warm.forces_eV_per_A)
    np.testing.assert_array_equal(cold.energies_eV, warm.energies_eV)
    for a, b in zip(cold.structures, warm.structures, strict=True):
        _same_atoms(a, b)
