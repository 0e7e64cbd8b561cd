"""Parse an extxyz file once: every frame as arrays, cached by the file's sha256.

ASE's extxyz reader seeks backwards in its input, and on a gzip stream every
seek decompresses from the start again (4.7 s for the 300 shipped test frames
against 0.2 s from memory). :func:`parse_frames` therefore decompresses the
whole file into memory first and parses the text from there. The parsed
frames (positions, atomic numbers, cells, pbc, every other per-atom array,
``atoms.info`` and the calculator results ASE attached) are kept:

* in memory for the rest of the process, keyed by the file's sha256, so every
  suite and model of a pytest session shares one parse;
* in the harness cache (``reference-frames/<key>.npz``, written atomically by
  :class:`~harness.cache.ArrayCache`) when a cache folder is given, so a warm
  run reads arrays instead of text.

Selection and validation stay in :mod:`harness.data.reference`; this module only
turns bytes into frames. A file whose frames do not fit the array layout
(e.g. a per-atom array present in some frames only, or an ``info`` value that
is neither a scalar nor a numeric array) is parsed every time and not cached.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import DataError

if TYPE_CHECKING:
    from ase import Atoms

    from harness.cache import ArrayCache

FORMAT = 1  # bump when the stored layout changes
_MEMORY_LIMIT = 8  # parsed files kept in memory
_memory: dict[str, ParsedFrames] = {}
_PER_ATOM_RESULTS = frozenset({"forces", "energies", "stresses", "magmoms", "charges"})


@dataclass(frozen=True, eq=False)
class ParsedFrames:
    """Every frame parsed from one file (frames up to a parse error, if one occurred).

    ``offsets[f]:offsets[f + 1]`` are the rows of frame ``f`` in the per-atom
    arrays. ``infos[f]`` is the frame's ``atoms.info`` as ASE read it;
    ``results[f]`` holds the per-structure calculator results ASE attached
    (e.g. ``energy``, ``stress``) whose keys are not in ``info``. ``arrays``
    holds every per-atom array but numbers and positions, calculator per-atom
    results (e.g. ``forces``) included. ``error`` says which frame could not be
    parsed and why (without the file's name: the parse is shared by content), or None.
    """

    n_atoms: np.ndarray  # (F,)
    numbers: np.ndarray  # (N,)
    positions: np.ndarray  # (N, 3)
    cells: np.ndarray  # (F, 3, 3)
    pbc: np.ndarray  # (F, 3) bool
    arrays: dict[str, np.ndarray]
    infos: tuple[dict[str, Any], ...]
    results: tuple[dict[str, Any], ...]
    error: str | None = None
    frames: tuple[Atoms, ...] | None = None  # set when the layout does not fit flat arrays (not cached)

    def __len__(self) -> int:
        return len(self.n_atoms)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_atoms)]).astype(np.int64)

    def atoms(self, index: int) -> Atoms:
        """Frame ``index`` as a new ``ase.Atoms`` (no calculator; calculator results in info/arrays)."""
        from ase import Atoms

        if self.frames is not None:
            return _without_calc(self.frames[index], self.results[index], self.arrays_of(index))
        off = self.offsets
        a, b = int(off[index]), int(off[index + 1])
        atoms = Atoms(
            numbers=self.numbers[a:b].copy(),
            positions=self.positions[a:b].copy(),
            cell=self.cells[index].copy(),
            pbc=self.pbc[index].copy(),
        )
        for name, values in self.arrays.items():
            atoms.arrays[name] = values[a:b].copy()
        atoms.info.update(_copy(self.infos[index]))
        for key, value in self.results[index].items():
            atoms.info.setdefault(key, _copy_value(value))
        return atoms


    def arrays_of(self, index: int) -> dict[str, np.ndarray]:
        """Per-atom calculator results of an uncached frame (empty for cached frames)."""
        if self.frames is None:
            return {}
        atoms = self.frames[index]
        calc = getattr(atoms.calc, "results", None) or {}
        return {
            k: np.array(v) for k, v in calc.items()
            if k in _PER_ATOM_RESULTS and np.ndim(v) >= 1 and len(v) == len(atoms) and k not in atoms.arrays
        }


def _without_calc(atoms: Atoms, results: dict[str, Any], per_atom: dict[str, np.ndarray]) -> Atoms:
    out = atoms.copy()
    out.calc = None
    for key, value in per_atom.items():
        out.arrays[key] = value
    for key, value in results.items():
        out.info.setdefault(key, _copy_value(value))
    return out


def _copy_value(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value


def _copy(info: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy_value(v) for k, v in info.items()}


def read_text(path: Path, data: bytes) -> str:
    """The file's text: gzip (by its ``.gz`` name) decompressed in memory; a corrupt stream is a DataError."""
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
            raise DataError(
                f"{path}: truncated or corrupt gzip ({err}) (fix: copy or regenerate the file; "
                "check it with `gzip -t`)"
            ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text at byte {err.start} (fix: point reference.structures at an extxyz "
            "text file, plain or .gz)"
        ) from None


def parse_frames(path: Path, data: bytes, sha256: str, cache: ArrayCache | None = None) -> ParsedFrames:
    """Every frame of the extxyz file whose bytes are ``data`` (sha256 ``sha256``), parsed once."""
    if sha256 in _memory:
        return _memory[sha256]
    from harness.cache import content_key

    key = content_key("reference-frames", FORMAT, sha256)
    parsed = _from_arrays(cache.load("reference-frames", key)) if cache is not None else None
    if parsed is None:
        parsed = _parse(path, read_text(path, data))
        arrays = _to_arrays(parsed) if parsed.error is None else None
        if cache is not None and arrays is not None:
            cache.store("reference-frames", key, arrays)
    while len(_memory) >= _MEMORY_LIMIT:
        _memory.pop(next(iter(_memory)))
    _memory[sha256] = parsed
    return parsed


def forget() -> None:
    """Drop the in-memory copies (tests; a long-lived process reading many files)."""
    _memory.clear()


def _parse(path: Path, text: str) -> ParsedFrames:
    from ase.io import iread

    frames: list[Atoms] = []
    error = None
    reader = iread(io.StringIO(text), index=":", format="extxyz")
    while True:
        try:
            frames.append(next(reader))
        except StopIteration:
            break
        except Exception as err:  # ase raises many types on malformed text
            error = (
                f"frame {len(frames)}: cannot parse extxyz ({type(err).__name__}: {err}) "
                "(fix: check the atom count line, the Properties= header and the columns)"
            )
            break
    return _from_atoms(frames, error)


def _from_atoms(frames: list[Atoms], error: str | None) -> ParsedFrames:
    infos, results, arrays_per_frame = [], [], []
    for atoms in frames:
        calc = getattr(atoms.calc, "results", None) or {}
        per_frame = {k: np.asarray(v) for k, v in atoms.arrays.items() if k not in ("numbers", "positions")}
        extra = {}
        for key, value in calc.items():
            if key in _PER_ATOM_RESULTS and np.ndim(value) >= 1 and len(value) == len(atoms):
                per_frame.setdefault(key, np.array(value))
            elif key not in atoms.info:
                extra[key] = value
        infos.append(dict(atoms.info))
        results.append(extra)
        arrays_per_frame.append(per_frame)
    names = sorted({k for a in arrays_per_frame for k in a})
    arrays: dict[str, np.ndarray] = {}
    consistent = True
    for name in names:
        parts = [a[name] for a in arrays_per_frame if name in a]
        if len(parts) != len(arrays_per_frame) or len({(p.dtype.kind, p.shape[1:]) for p in parts}) != 1:
            consistent = False
            break
        arrays[name] = np.concatenate(parts)
    return ParsedFrames(
        n_atoms=np.asarray([len(a) for a in frames], dtype=np.int64),
        numbers=np.concatenate([a.numbers for a in frames]) if frames else np.zeros(0, dtype=np.int64),
        positions=np.concatenate([a.positions for a in frames]) if frames else np.zeros((0, 3)),
        cells=np.asarray([a.cell.array for a in frames], dtype=np.float64).reshape(-1, 3, 3),
        pbc=np.asarray([a.pbc for a in frames], dtype=bool).reshape(-1, 3),
        arrays=arrays if consistent else {},
        infos=tuple(infos),
        results=tuple(results),
        error=error,
        frames=None if consistent else tuple(frames),
    )


# --- stored layout: plain arrays plus one JSON text for info and results (no pickles) ---


def _encode(value: Any) -> Any:
    if isinstance(value, np.generic):  # keep numpy scalar types (ase gives np.float64 for some values)
        if value.dtype.kind not in "biufU":
            raise TypeError(type(value).__name__)
        return {"scalar": _encode(value.item()), "dtype": value.dtype.str}
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and value != value:
            return {"float": "nan"}
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            return {"float": "inf" if value > 0 else "-inf"}
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"array": [_encode(v) for v in value.reshape(-1).tolist()], "dtype": value.dtype.str,
                "shape": list(value.shape)}
    raise TypeError(type(value).__name__)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "float" in value:
            return float(value["float"])
        if "scalar" in value:
            return np.asarray(_decode(value["scalar"]), dtype=np.dtype(value["dtype"]))[()]
        flat = [_decode(v) for v in value["array"]]
        return np.asarray(flat, dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    return value


def _to_arrays(parsed: ParsedFrames) -> dict[str, np.ndarray] | None:
    if parsed.frames is not None:
        return None
    try:
        meta = json.dumps(
            {
                "arrays": sorted(parsed.arrays),
                "infos": [{k: _encode(v) for k, v in info.items()} for info in parsed.infos],
                "results": [{k: _encode(v) for k, v in r.items()} for r in parsed.results],
            },
            allow_nan=False,
        )
    except (TypeError, ValueError):
        return None  # an info value that is not a scalar or a numeric array: parse every time
    out = {
        "meta": np.asarray(meta),
        "n_atoms": parsed.n_atoms,
        "numbers": parsed.numbers,
        "positions": parsed.positions,
        "cells": parsed.cells,
        "pbc": parsed.pbc,
    }
    for index, name in enumerate(sorted(parsed.arrays)):
        if parsed.arrays[name].dtype.kind not in "biufU":
            return None
        out[f"array{index}"] = parsed.arrays[name]
    return out


def _from_arrays(stored: dict[str, np.ndarray] | None) -> ParsedFrames | None:
    if stored is None:
        return None
    try:
        meta = json.loads(str(stored["meta"]))
        arrays = {name: stored[f"array{index}"] for index, name in enumerate(meta["arrays"])}
        return ParsedFrames(
            n_atoms=stored["n_atoms"],
            numbers=stored["numbers"],
            positions=stored["positions"],
            cells=stored["cells"],
            pbc=stored["pbc"].astype(bool),
            arrays=arrays,
            infos=tuple({k: _decode(v) for k, v in info.items()} for info in meta["infos"]),
            results=tuple({k: _decode(v) for k, v in r.items()} for r in meta["results"]),
        )
    except (KeyError, ValueError, TypeError):
        return None  # a layout this version does not read: parse again
