"""Reference structures with energy and force labels, read from extxyz.

:func:`load_reference` reads an extxyz file (plain or ``.gz``), checks its
sha256, selects frames by ``atoms.info`` keys and validates every kept frame
(labels present and finite, shapes right, no overlapping atoms). Every error
is a :class:`~harness.errors.DataError` that names the file and the frame and
says what would fix it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import DataError
from harness.profile import stage

if TYPE_CHECKING:
    from ase import Atoms

    from harness.cache import ArrayCache

SelectValue = str | int | float | bool
MIN_DISTANCE_A = 0.5
# calculator results that are per-atom (go to atoms.arrays); the rest go to atoms.info
_PER_ATOM_RESULTS = frozenset({"forces", "energies", "stresses", "magmoms", "charges"})


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """Kept frames of a reference file and their labels (arrays are read-only).

    ``forces_eV_per_A`` and ``symbols`` are concatenated over structures;
    ``offsets[s]:offsets[s + 1]`` are the rows of structure ``s``.
    """

    structures: tuple[Atoms, ...]
    energies_eV: np.ndarray  # (S,)
    forces_eV_per_A: np.ndarray  # (N, 3)
    n_atoms: np.ndarray  # (S,) int
    symbols: np.ndarray  # (N,) str
    frame_indices: np.ndarray  # (S,) index of each kept frame in the file
    path: Path
    sha256: str
    energy_key: str = "REF_energy"
    forces_key: str = "REF_forces"

    def __len__(self) -> int:
        return len(self.structures)

    @property
    def offsets(self) -> np.ndarray:
        """(S + 1,) start row of each structure in the concatenated arrays, then N."""
        return np.concatenate([[0], np.cumsum(self.n_atoms)]).astype(np.int64)

    def per_structure(self, values: np.ndarray | Sequence[Any]) -> list[np.ndarray]:
        """Split a per-atom array of N rows into one array per structure."""
        arr = np.asarray(values)
        total = int(self.offsets[-1])
        if arr.ndim == 0 or arr.shape[0] != total:
            raise DataError(
                f"{self.path}: per-atom values have shape {arr.shape}, expected {total} rows "
                f"(one per atom of the {len(self)} kept structures)"
            )
        off = self.offsets
        return [arr[off[s] : off[s + 1]] for s in range(len(self))]

    @property
    def elements(self) -> list[str]:
        """Sorted distinct chemical symbols."""
        return sorted(set(self.symbols.tolist()))

    @property
    def identity(self) -> str:
        """sha256 of the file's sha256, the label keys and the kept frames (a cache key)."""
        key = json.dumps(
            {
                "sha256": self.sha256,
                "energy_key": self.energy_key,
                "forces_key": self.forces_key,
                "frames": [int(i) for i in self.frame_indices],
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(key.encode()).hexdigest()


def _plain(value: Any) -> Any:
    """numpy scalars as Python scalars, so messages read 2 and not np.int64(2)."""
    return value.item() if isinstance(value, np.generic) else value


def frame_location(path: Path, index: int, atoms: Atoms | None = None) -> str:
    text = f"{path}: frame {index}"
    if atoms is not None:
        extra = [f"{k}={_plain(atoms.info[k])!r}" for k in ("trajectory", "frame") if k in atoms.info]
        if extra:
            text += f" ({', '.join(extra)})"
    return text


def _is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def _matches(value: Any, wanted: object) -> bool:
    if np.ndim(value) != 0:
        return False
    value = _plain(value)
    if isinstance(value, bool) or isinstance(wanted, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    if isinstance(wanted, str) or isinstance(value, str):
        return str(value) == str(wanted)
    try:
        return bool(value == wanted)
    except Exception:
        return False


def _selected_info(info: Mapping[str, Any], select: Mapping[str, SelectValue | Sequence[SelectValue]]) -> bool:
    for key, wanted in select.items():
        if key not in info:
            return False
        options = list(wanted) if isinstance(wanted, (list, tuple)) else [wanted]
        if not any(_matches(info[key], w) for w in options):
            return False
    return True


def _label(atoms: Atoms, key: str, per_atom: bool) -> Any:
    """The label under ``key``: from info/arrays, else from a calculator ase attached."""
    store = atoms.arrays if per_atom else atoms.info
    if key in store:
        return store[key]
    calc = atoms.calc
    results = getattr(calc, "results", None) or {}
    if key in results:
        return results[key]
    return None


def _present(atoms: Atoms) -> str:
    info = sorted(atoms.info)
    arrays = sorted(k for k in atoms.arrays if k not in ("numbers", "positions"))
    results = sorted(getattr(atoms.calc, "results", None) or {})
    text = f"info keys {info}, arrays keys {arrays}"
    if results:
        text += f", calculator results {results}"
    return text


def strip_calc(atoms: Atoms) -> Atoms:
    """A copy with calculator results moved into info/arrays and no calculator."""
    out = atoms.copy()
    out.calc = None
    results = getattr(atoms.calc, "results", None) or {}
    for key, value in results.items():
        if key in _PER_ATOM_RESULTS and np.ndim(value) >= 1 and len(value) == len(atoms):
            if key not in out.arrays:
                out.arrays[key] = np.array(value)
        elif key not in out.info:
            out.info[key] = value
    return out


_DIRECT_MAX_ATOMS = 4000  # pairs checked directly (numpy) up to this size; ASE's cell list above


def _close_pairs_direct(positions: np.ndarray, cell: np.ndarray, periodic: bool) -> tuple[np.ndarray, ...]:
    """Pairs (i < j) closer than MIN_DISTANCE_A, minimum image, by one numpy pass over all pairs.

    Exact when every plane spacing of a periodic cell exceeds 2 * MIN_DISTANCE_A:
    a vector shorter than MIN_DISTANCE_A then has fractional components below
    1/2, so rounding the fractional difference finds it, and no atom is that
    close to its own image.
    """
    n = len(positions)
    inverse = np.linalg.inv(cell) if periodic else None
    found_i, found_j, found_d = [], [], []
    rows = max(1, (1 << 21) // max(n, 1))
    for start in range(0, n, rows):
        diff = positions[None, :, :] - positions[start : start + rows, None, :]
        if inverse is not None:
            frac = diff @ inverse
            diff = (frac - np.round(frac)) @ cell
        d = np.sqrt(np.einsum("abk,abk->ab", diff, diff))
        i, j = np.nonzero(d < MIN_DISTANCE_A)
        i = i + start
        keep = i < j
        found_i.append(i[keep])
        found_j.append(j[keep])
        found_d.append(d[i[keep] - start, j[keep]])
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)


def _check_overlap(atoms: Atoms, where: str) -> None:
    pbc = atoms.pbc
    if pbc.any() and np.linalg.matrix_rank(atoms.cell[pbc]) < int(pbc.sum()):
        raise DataError(
            f"{where}: periodic along {pbc.tolist()} but the cell {atoms.cell.tolist()} is degenerate "
            "(fix: write a Lattice= with non-zero vectors or set pbc=\"F F F\")"
        )
    cell = atoms.cell.array
    direct = len(atoms) <= _DIRECT_MAX_ATOMS and (
        not pbc.any() or (pbc.all() and float(np.min(atoms.cell.volume / np.linalg.norm(
            np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1))) > 2 * MIN_DISTANCE_A)
    )
    if direct:
        i, j, d = _close_pairs_direct(atoms.positions, cell, bool(pbc.all()))
    else:  # mixed periodicity, very thin cells, very large structures
        from ase.neighborlist import neighbor_list

        i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE_A)
    if len(d):
        k = int(np.argmin(d))
        a, b = int(i[k]), int(j[k])
        symbols = atoms.get_chemical_symbols()
        raise DataError(
            f"{where}: overlapping atoms: atom {a} ({symbols[a]}) and atom {b} ({symbols[b]}) are "
            f"{d[k]:.3f} A apart (minimum image), closer than {MIN_DISTANCE_A} A "
            "(fix: remove the duplicated atom or the broken frame; check the cell and wrapping)"
        )


def _validate(atoms: Atoms, where: str, energy_key: str, forces_key: str) -> tuple[float, np.ndarray]:
    n = len(atoms)
    if n == 0:
        raise DataError(f"{where}: structure has zero atoms (fix: remove the empty frame)")
    positions = atoms.get_positions()
    if not np.isfinite(positions).all():
        bad = int(np.argwhere(~np.isfinite(positions).all(axis=1))[0, 0])
        raise DataError(f"{where}: atom {bad} has a non-finite position (fix: remove or regenerate the frame)")

    raw_e = _label(atoms, energy_key, per_atom=False)
    if raw_e is None:
        raise DataError(
            f"{where}: no energy label {energy_key!r}; present: {_present(atoms)} "
            "(fix: set reference.energy_key to the key that holds the energy in eV)"
        )
    try:
        energy = float(np.asarray(raw_e).item())
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: energy label {energy_key!r} is {raw_e!r}, not a number "
            "(fix: store the total energy in eV as one number)"
        ) from None
    if not math.isfinite(energy):
        raise DataError(f"{where}: energy {energy_key!r} is {energy} (fix: relabel or remove the frame)")

    raw_f = _label(atoms, forces_key, per_atom=True)
    if raw_f is None:
        raise DataError(
            f"{where}: no forces label {forces_key!r}; present: {_present(atoms)} "
            "(fix: set reference.forces_key to the per-atom array that holds the forces in eV/A)"
        )
    try:
        forces = np.asarray(raw_f, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: forces {forces_key!r} are not numbers (fix: store them as a real (N, 3) array)"
        ) from None
    if forces.shape != (n, 3):
        raise DataError(
            f"{where}: forces {forces_key!r} have shape {forces.shape}, expected ({n}, 3) "
            f"(fix: write them as a 3-column property, e.g. Properties=...:{forces_key}:R:3)"
        )
    if not np.isfinite(forces).all():
        bad = int(np.argwhere(~np.isfinite(forces).all(axis=1))[0, 0])
        raise DataError(
            f"{where}: forces {forces_key!r} of atom {bad} are {forces[bad].tolist()} "
            "(fix: relabel or remove the frame)"
        )
    _check_overlap(atoms, where)
    return energy, forces


def _seen_values(frames_info: list[dict[str, Any]], key: str) -> str:
    seen: dict[str, None] = {}
    missing = 0
    for info in frames_info:
        if key in info:
            value = _plain(info[key])
            seen.setdefault(repr(value) if np.ndim(value) == 0 else f"<array {np.shape(value)}>", None)
        else:
            missing += 1
    values = sorted(seen)
    shown = ", ".join(values[:20]) + (f", ... ({len(values)} distinct)" if len(values) > 20 else "")
    text = f"{key!r}: [{shown}]"
    if missing:
        text += f" (missing in {missing} frame{'s' if missing != 1 else ''})"
    return text


def load_reference(
    path: Path | str,
    *,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    sha256: str | None = None,
    select: Mapping[str, SelectValue | Sequence[SelectValue]] | None = None,
    max_structures: int | None = None,
    cache: ArrayCache | None = None,
) -> ReferenceSet:
    """Read, select and validate reference frames from an extxyz file (plain or .gz).

    The file is read once into memory (hashed, decompressed, parsed there);
    its parsed frames are shared by every later call in the process and, with
    ``cache``, stored as arrays keyed by the file's sha256 (:mod:`harness.data.frames`).
    """
    from harness.data.frames import parse_frames

    path = Path(path)
    select = dict(select or {})
    if not path.is_file():
        raise DataError(f"{path}: reference file not found (fix: check reference.structures in the suite)")
    if max_structures is not None and max_structures < 1:
        raise DataError(f"{path}: max_structures is {max_structures} (fix: use a positive number or leave it out)")

    with stage("read"):
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if sha256 is not None and actual != sha256.lower():
            raise DataError(
                f"{path}: sha256 mismatch: expected {sha256}, actual {actual} "
                "(fix: restore the file, or update the suite's sha256 if the change is intended)"
            )
        parsed = parse_frames(path, data, actual, cache)
        del data

        kept: list[tuple[int, Atoms]] = []
        infos: list[dict[str, Any]] = []
        for index, info in enumerate(parsed.infos):
            if max_structures is not None and len(kept) >= max_structures:
                break
            if select:
                infos.append({k: info[k] for k in select if k in info})
                if not _selected_info(info, select):
                    continue
            kept.append((index, parsed.atoms(index)))
        if parsed.error is not None and (max_structures is None or len(kept) < max_structures):
            raise DataError(f"{path}: {parsed.error}")
        n_frames = len(parsed)
        if n_frames == 0:
            raise DataError(f"{path}: contains no frames (fix: point reference.structures at a non-empty extxyz file)")
        if not kept:
            seen = "; ".join(_seen_values(infos, k) for k in select)
            raise DataError(
                f"{path}: select {select} kept none of the {n_frames} frames; values seen: {seen} "
                "(fix: change reference.select to values present in the file)"
            )

        structures: list[Atoms] = []
        energies: list[float] = []
        forces: list[np.ndarray] = []
        for index, clean in kept:  # fresh copies without a calculator
            where = frame_location(path, index, clean)
            energy, f = _validate(clean, where, energy_key, forces_key)
            clean.info[energy_key] = energy
            clean.arrays[forces_key] = f.copy()
            structures.append(clean)
            energies.append(energy)
            forces.append(f)

    def frozen(a: np.ndarray) -> np.ndarray:
        a.setflags(write=False)
        return a

    return ReferenceSet(
        structures=tuple(structures),
        energies_eV=frozen(np.asarray(energies, dtype=np.float64)),
        forces_eV_per_A=frozen(np.concatenate(forces).astype(np.float64)),
        n_atoms=frozen(np.asarray([len(a) for a in structures], dtype=np.int64)),
        symbols=frozen(np.asarray([s for a in structures for s in a.get_chemical_symbols()], dtype=str)),
        frame_indices=frozen(np.asarray([i for i, _ in kept], dtype=np.int64)),
        path=path,
        sha256=actual,
        energy_key=energy_key,
        forces_key=forces_key,
    )


