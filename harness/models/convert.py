"""Convert a pickled MACE checkpoint to the safe format, and prove the result equal.

``convert_checkpoint`` unpickles the source (only with its sha256 pin or an
explicit ``allow_unpinned``), writes a safe checkpoint to a temporary file,
reloads that file with no pickle at all, and compares energies, forces and raw
Grad-CAM on a few structures in float64. Only when every difference is within
the tolerance (relative to the largest magnitude of that quantity, so that a
reordered float64 sum passes and a changed weight does not) is the file renamed
into place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from harness.errors import DataError, ModelError
from harness.files import atomic_path, sha256_file
from harness.models import ModelOutputs
from harness.models.safe_checkpoint import SUFFIX, is_safe_checkpoint

DEFAULT_TOLERANCE = 1e-9
QUANTITIES = ("energies_eV", "forces_eV_per_A", "gradcam_raw")


@dataclass(frozen=True)
class ConversionReport:
    """What was converted, the hashes of both files, and the largest difference per quantity."""

    source: Path
    source_sha256: str
    output: Path
    output_sha256: str
    n_structures: int
    max_abs_diff: dict[str, float]
    scale: dict[str, float]
    tolerance: float
    dropped_buffers: tuple[str, ...]

    def lines(self) -> list[str]:
        diffs = ", ".join(f"max |d {name}| = {value:.3g}" for name, value in self.max_abs_diff.items())
        out = [
            f"source  {self.source}  sha256 {self.source_sha256}",
            f"output  {self.output}  sha256 {self.output_sha256}",
            f"verified pickle-free on {self.n_structures} structures (float64, tolerance "
            f"{self.tolerance:g} x largest |value|): {diffs}",
        ]
        if self.dropped_buffers:
            out.append(
                f"left out {len(self.dropped_buffers)} non-parameter buffer(s) the architecture does not "
                f"build: {', '.join(self.dropped_buffers)}"
            )
        return out


class ConversionMismatch(ModelError):
    """The converted model does not reproduce the original within the tolerance (nothing is written)."""


def synthetic_structures(elements: Sequence[str], *, count: int = 3, seed: int = 0) -> list[Atoms]:
    """Small periodic cells holding every element: 2x2x2 sites 2.8 A apart, rattled (seeded)."""
    if not elements or any(e not in atomic_numbers for e in elements):
        raise ModelError(f"synthetic_structures: need chemical symbols, got {list(elements)}")
    rng = np.random.default_rng(seed)
    grid = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)], dtype=float) * 2.8
    structures = []
    for _ in range(count):
        symbols = [elements[i % len(elements)] for i in range(len(grid))]
        rng.shuffle(symbols)
        positions = grid + rng.normal(0.0, 0.1, size=grid.shape)
        structures.append(Atoms(symbols, positions=positions, cell=np.eye(3) * 5.6, pbc=True))
    return structures


def read_structures(path: Path | str, count: int) -> list[Atoms]:
    """The first ``count`` structures of an extxyz (or any ASE-readable) file."""
    from ase.io import read

    path = Path(path)
    if count < 1:
        raise DataError(f"--n-structures must be >= 1, got {count}")
    try:
        structures = read(str(path), index=f":{count}")
    except Exception as error:  # noqa: BLE001 - ASE raises many kinds
        raise DataError(f"{path}: cannot read structures ({type(error).__name__}: {error})") from None
    if not structures:
        raise DataError(f"{path}: holds no structures")
    return list(structures)


def max_abs_differences(a: ModelOutputs, b: ModelOutputs) -> dict[str, float]:
    """Largest absolute difference of each quantity (inf where shapes differ)."""
    out = {}
    for name in QUANTITIES:
        x, y = getattr(a, name), getattr(b, name)
        if x.shape != y.shape:
            out[name] = float("inf")
        else:
            out[name] = float(np.max(np.abs(x - y))) if x.size else 0.0
    return out


def magnitudes(outputs: ModelOutputs) -> dict[str, float]:
    """Largest absolute value of each quantity (the scale a tolerance is relative to)."""
    return {
        name: float(np.max(np.abs(getattr(outputs, name)))) if getattr(outputs, name).size else 0.0
        for name in QUANTITIES
    }


def convert_checkpoint(
    source: Path | str,
    output: Path | str,
    *,
    expected_sha256: str | None,
    allow_unpinned: bool = False,
    structures: Sequence[Atoms] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ConversionReport:
    """Pickle -> safe checkpoint, verified equal on ``structures`` (default: synthetic ones).

    Each quantity must satisfy ``max|new - old| <= tolerance * max|old|``.
    """
    from harness.models.mace.architecture import save_safe_model
    from harness.models.mace.model import MaceModel

    source, output = Path(source), Path(output)
    if not is_safe_checkpoint(output):
        raise ModelError(f"{output}: the output name must end in {SUFFIX}")
    if is_safe_checkpoint(source):
        raise ModelError(f"{source} is already a safe checkpoint")
    original = MaceModel.load(
        source, dtype="float64", expected_sha256=expected_sha256, allow_unpinned=allow_unpinned
    )
    if structures is None:
        structures = synthetic_structures(original.elements)
    structures = list(structures)
    with atomic_path(output, suffix=SUFFIX, mode=0o644) as tmp:  # renamed into place only once proven equal
        dropped = save_safe_model(original.module, tmp, source_sha256=original.identity)
        reloaded = MaceModel.load(tmp, dtype="float64", expected_sha256=sha256_file(tmp))
        before = original.evaluate(structures)
        diffs = max_abs_differences(before, reloaded.evaluate(structures))
        scale = magnitudes(before)
        for name, diff in diffs.items():
            if not diff <= tolerance * scale[name]:
                raise ConversionMismatch(
                    f"{source}: the converted model differs from the original on {len(structures)} "
                    f"structures: max |d {name}| = {diff:.3g} > {tolerance:g} x {scale[name]:.3g}; "
                    "nothing written"
                )
    return ConversionReport(
        source=source,
        source_sha256=original.identity,
        output=output,
        output_sha256=sha256_file(output),
        n_structures=len(structures),
        max_abs_diff=diffs,
        scale=scale,
        tolerance=tolerance,
        dropped_buffers=tuple(dropped),
    )
