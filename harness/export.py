"""Per-atom scores for atom viewers: extxyz (OVITO, ASE's GUI) and, if installed, chemiscope.

`pytest --harness-scores DIR` writes, for every evaluated model of every suite,
``DIR/<suite>.<model>.extxyz`` with the reference structures and per-atom
arrays ``gradcam`` (the suite's variant and normalisation) and ``gradcam_raw``
in ``atoms.arrays``; and, when the `chemiscope` package is importable (extra
``report``), ``DIR/<suite>.chemiscope.json.gz`` with one atom property per model.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from harness.reference import write_scores_extxyz
from harness.session import SuiteRun


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
