"""Per-atom scores for atom viewers: extxyz (OVITO, ASE's GUI) and, if installed, chemiscope.

`pytest --harness-scores DIR` writes, for every evaluated model of every suite,
``DIR/<suite>.<model>.extxyz`` with the reference structures and per-atom
arrays ``gradcam`` (the suite's variant and normalisation) and ``gradcam_raw``
in ``atoms.arrays``; and, when the `chemiscope` package is importable (extra
``report``), ``DIR/<suite>.chemiscope.json.gz`` with one atom property per model.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.data.reference import frame_location, strip_calc
from harness.errors import DataError
from harness.files import atomic_write
from harness.gate.session import SuiteRun

if TYPE_CHECKING:
    from ase import Atoms



def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def chemiscope_available() -> bool:
    from importlib.util import find_spec

    return find_spec("chemiscope") is not None


def write_scores(run: SuiteRun, directory: Path | str) -> list[Path]:
    """Write the files above for the models this run evaluated; returns their paths."""
    directory = Path(directory)
    ref = run.reference
    names = run.evaluated_models()
    written = []
    stem = _safe(run.suite.suite)
    for name in names:
        path = directory / f"{stem}.{_safe(name)}.extxyz"
        write_scores_extxyz(
            path,
            list(ref.structures),
            {
                "gradcam": ref.per_structure(run.scores(name)),
                "gradcam_raw": ref.per_structure(run.outputs(name).gradcam_raw),
            },
        )
        written.append(path)
    if names and chemiscope_available():
        written.append(_write_chemiscope(run, directory / f"{stem}.chemiscope.json.gz", names))
    return written


def _write_chemiscope(run: SuiteRun, path: Path, names: list[str]) -> Path:
    import chemiscope

    ref = run.reference
    properties: dict[str, dict[str, object]] = {
        f"gradcam[{name}]": {
            "target": "atom",
            "values": np.asarray(run.scores(name), dtype=float),
            "description": f"Grad-CAM score of model {name} ({run.suite.attribution.variant}, "
            f"normalisation {run.suite.attribution.normalisation})",
        }
        for name in names
    }
    for name in names:
        errors = np.abs(run.outputs(name).energies_eV - ref.energies_eV) / ref.n_atoms * 1000.0
        properties[f"energy_error[{name}]"] = {
            "target": "structure",
            "values": errors,
            "units": "meV/atom",
            "description": f"|E_model - E_ref| per atom of model {name}",
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    chemiscope.write_input(
        str(path),
        structures=[a.copy() for a in ref.structures],
        properties=properties,
        environments=chemiscope.all_atomic_environments([a.copy() for a in ref.structures]),
        metadata={"name": f"{run.suite.suite}: per-atom Grad-CAM scores"},
    )
    return path


def write_scores_extxyz(
    path: Path | str,
    structures: Sequence[Atoms],
    per_atom: Mapping[str, Sequence[np.ndarray]],
) -> None:
    """Write ``structures`` with extra per-atom arrays to extxyz (gzip if the name ends in .gz).

    ``per_atom[name][s]`` holds one value (or row) per atom of ``structures[s]``.
    The file is written to a temporary name and renamed, so readers never see half of it.
    """
    from ase.io import write

    path = Path(path)
    if not structures:
        raise DataError(f"{path}: no structures to write (fix: pass at least one structure)")
    frames: list[Atoms] = []
    for s, atoms in enumerate(structures):
        out = strip_calc(atoms)
        for name, values in per_atom.items():
            if name in ("numbers", "positions", "species", "pos"):
                raise DataError(f"{path}: per-atom array name {name!r} is reserved by extxyz (fix: rename it)")
            if len(values) != len(structures):
                raise DataError(
                    f"{path}: {name!r} has {len(values)} entries for {len(structures)} structures "
                    "(fix: give one array per structure)"
                )
            arr = np.asarray(values[s])
            if arr.ndim == 0 or arr.shape[0] != len(out):
                raise DataError(
                    f"{frame_location(path, s, out)}: {name!r} has shape {arr.shape}, expected {len(out)} rows "
                    "(fix: give one value per atom)"
                )
            out.arrays[name] = arr.copy()
        frames.append(out)

    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    data = buf.getvalue().encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: handle.write(data))
