"""`mlff-harness init`: a first suite for your own system, from one structures file and one checkpoint.

The suite it writes is valid at once (``mlff-harness validate``) and pins both
files by sha256, with paths relative to the suite file. It reads the
structures to find the energy and force labels (or says which keys it found)
and the elements (the SOAP species), and loads the checkpoint once to check
that it knows every element of the data.

Its thresholds are *placeholders*: each bound carries the comment
``# calibrate`` and admits every value a model can have, so the suite gates
nothing until ``mlff-harness calibrate`` has proposed thresholds from good and
must-fail models (:mod:`harness.own_system.calibrate`). The direction of each bound (min
or max) is what calibration keeps.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError, ModelError, SuiteError

PLACEHOLDER = "# calibrate"
UNCALIBRATED = "UNCALIBRATED"
# label names tried in this order when --energy-key/--forces-key are not given
ENERGY_KEYS = ("REF_energy", "ref_energy", "dft_energy", "DFT_energy", "energy", "total_energy", "free_energy")
FORCES_KEYS = ("REF_forces", "ref_forces", "dft_forces", "DFT_forces", "forces", "force")
_EXTENSIONS = (".gz", ".extxyz", ".xyz")


@dataclass(frozen=True)
class InitResult:
    """What `init` wrote and found."""

    suite_path: Path
    energy_key: str
    forces_key: str
    species: tuple[str, ...]
    n_structures: int
    focus: tuple[str, ...]


def suite_stem(structures: Path) -> str:
    """The structures file's name without .gz/.extxyz/.xyz (``train.extxyz.gz`` -> ``train``)."""
    name = structures.name
    for ext in _EXTENSIONS:
        if name.endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]
    return name


def _first_frame(path: Path) -> Any:
    from ase.io import read

    try:
        return read(str(path), index=0, format="extxyz")
    except Exception as err:  # ase raises many types for a malformed file
        raise DataError(f"{path}: cannot read the first frame as extxyz ({type(err).__name__}: {err})") from None


def _label_keys(atoms: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Candidate energy keys (scalar) and force keys (N x 3), each with where it was found."""
    n = len(atoms)
    results = dict(getattr(atoms.calc, "results", None) or {})
    scalars: dict[str, str] = {}
    vectors: dict[str, str] = {}
    for where, store in (("atoms.info", atoms.info), ("calculator results", results)):
        for key, value in store.items():
            shape = np.shape(value)
            if shape == () and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                scalars.setdefault(key, where)
            elif shape == (n, 3):
                vectors.setdefault(key, where)
    for key, value in atoms.arrays.items():
        if key not in ("numbers", "positions") and np.shape(value) == (n, 3):
            vectors.setdefault(key, "atoms.arrays")
    return scalars, vectors


def detect_keys(
    path: Path, energy_key: str | None = None, forces_key: str | None = None
) -> tuple[str, str]:
    """The energy and force label keys of the first frame: the given ones, else the first known name present."""
    atoms = _first_frame(path)
    scalars, vectors = _label_keys(atoms)

    def found() -> str:
        energies = ", ".join(f"{k} ({w})" for k, w in sorted(scalars.items())) or "none"
        forces = ", ".join(f"{k} ({w})" for k, w in sorted(vectors.items())) or "none"
        return f"numbers found: {energies}; per-atom 3-vectors found: {forces}"

    def pick(given: str | None, known: Sequence[str], present: dict[str, str], what: str, option: str) -> str:
        if given is not None:
            if given not in present:
                raise DataError(
                    f"{path}: frame 0 has no {what} label {given!r}; {found()} (fix: name the key with {option})"
                )
            return given
        for key in known:
            if key in present:
                return key
        raise DataError(
            f"{path}: frame 0 has no {what} label under a known name ({', '.join(known)}); {found()} "
            f"(fix: name the key with {option})"
        )

    return (
        pick(energy_key, ENERGY_KEYS, scalars, "energy", "--energy-key KEY (total energy, eV)"),
        pick(forces_key, FORCES_KEYS, vectors, "forces", "--forces-key KEY (forces, eV/A)"),
    )


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def suite_text(
    *,
    name: str,
    structures: str,
    structures_sha256: str,
    energy_key: str,
    forces_key: str,
    checkpoint: str,
    checkpoint_sha256: str,
    checkpoint_name: str | None,
    species: Sequence[str],
    focus: Sequence[str],
) -> str:
    """The suite file `init` writes (placeholder thresholds marked ``# calibrate``)."""
    description = (
        f"Release gate for {name}, written by mlff-harness init. {UNCALIBRATED}: every threshold marked "
        f"'{PLACEHOLDER}' is a placeholder that admits any model until `mlff-harness calibrate` replaces it."
    )
    candidate = f"{{checkpoint: {_q(checkpoint)}, sha256: {checkpoint_sha256}"
    if checkpoint_name:
        candidate += f", description: {_q(checkpoint_name)}"
    candidate += "}"
    lines = [
        f"suite: {_q(name)}",
        f"description: {_q(description)}",
        "reference:",
        f"  structures: {_q(structures)}",
        f"  sha256: {structures_sha256}",
        f"  energy_key: {_q(energy_key)}    # total energy, eV (atoms.info)",
        f"  forces_key: {_q(forces_key)}    # forces, eV/A (atoms.arrays)",
        "models:",
        f"  candidate: {candidate}",
        "descriptor:",
        f"  soap: {{species: [{', '.join(_q(s) for s in species)}]}}    "
        "# the elements of the structures; the paper's SOAP settings",
        "surrogate: {target: signed}    # E_model - E_ref: a systematic error keeps its sign (the shipped example's "
        "surrogate R^2 rose from 0.58 to 0.72 with it)",
        "settings: {dtype: float64, seed: 0}",
        "checks:",
        "  - accuracy:",
        f"      energy_rmse_meV_per_atom: {{max: 1.0e+6}}    {PLACEHOLDER}",
        f"      force_rmse_meV_per_A: {{max: 1.0e+6}}    {PLACEHOLDER}",
    ]
    for element in focus:
        lines += [
            "  - gradcam_locus:    # 'where': does the model look at this element?",
            f"      name: {_q('locus-' + element)}",
            f"      element: {_q(element)}",
            f"      mean_ratio_to_host: {{min: 0.0}}    {PLACEHOLDER}",
            f"      relu_zero_fraction: {{max: 1.0}}    {PLACEHOLDER}",
        ]
    lines += [
        "  - shap_classes:    # 'what': which SOAP feature classes explain the model's error",
        "      surrogate_cv_r2: {min: 0.7}    # the paper's bar for evidence; calibrate keeps it",
        "      top_n: 20",
        "      angular_l: [0]    # a pair-like error (e.g. a wrong pair term) lives in the isotropic channel",
        f"      angular_l_share: {{max: 1.0}}    {PLACEHOLDER}",
    ]
    if focus:
        lines += [
            f"      involving: {_q(focus[0])}",
            f"      involving_share: {{min: 0.0}}    {PLACEHOLDER}",
        ]
    return "\n".join(lines) + "\n"


def _relative(target: Path, folder: Path) -> str:
    return Path(os.path.relpath(target.resolve(), folder.resolve())).as_posix()


def init_suite(
    structures: Path | str,
    checkpoint: Path | str,
    *,
    out_dir: Path | str = ".",
    name: str | None = None,
    checkpoint_name: str | None = None,
    focus: Sequence[str] = (),
    energy_key: str | None = None,
    forces_key: str | None = None,
    force: bool = False,
    device: str = "cpu",
) -> InitResult:
    """Write ``out_dir/<name>.suite.yaml`` for ``structures`` and ``checkpoint``; see the module docstring."""
    from harness.data.reference import load_reference
    from harness.files import sha256_file
    from harness.suite.bounds import MODEL_NAME_RE, _element
    from harness.suite.loader import load_suite

    structures, checkpoint, out_dir = Path(structures), Path(checkpoint), Path(out_dir)
    for path, what in ((structures, "structures"), (checkpoint, "checkpoint")):
        if not path.exists():
            raise DataError(f"{path}: {what} file not found")
        if not path.is_file():
            raise DataError(f"{path}: the {what} must be a file, not a directory")
    stem = name or suite_stem(structures)
    if not MODEL_NAME_RE.match(stem):
        raise SuiteError(
            f"suite name {stem!r} must start with a letter and use letters, digits, '_', '-', '.'",
            fix="give one with --name",
        )
    for element in focus:
        try:
            _element(element)
        except ValueError as err:
            raise DataError(f"--focus {element}: {err}") from None
    if out_dir.exists() and not out_dir.is_dir():
        raise SuiteError("the output folder is a file", path=out_dir, fix="give a folder with --out")
    target = out_dir / f"{stem}.suite.yaml"
    if target.exists() and not force:
        raise SuiteError("a suite already exists here; refusing to overwrite it", path=target, fix="add --force")

    energy_key, forces_key = detect_keys(structures, energy_key, forces_key)
    reference = load_reference(structures, energy_key=energy_key, forces_key=forces_key)  # validates every frame
    species = tuple(reference.elements)
    missing = [el for el in focus if el not in species]
    if missing:
        raise DataError(
            f"{structures}: --focus {' '.join(missing)}: no such atom in the structures "
            f"(elements: {', '.join(species)})"
        )
    checkpoint_sha256 = sha256_file(checkpoint)
    _check_model(checkpoint, checkpoint_sha256, species, device)

    out_dir.mkdir(parents=True, exist_ok=True)
    text = suite_text(
        name=stem,
        structures=_relative(structures, out_dir),
        structures_sha256=reference.sha256,
        energy_key=energy_key,
        forces_key=forces_key,
        checkpoint=_relative(checkpoint, out_dir),
        checkpoint_sha256=checkpoint_sha256,
        checkpoint_name=checkpoint_name,
        species=species,
        focus=tuple(focus),
    )
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    try:
        load_suite(temporary)  # what we write must validate
    except SuiteError:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)
    return InitResult(target, energy_key, forces_key, species, len(reference), tuple(focus))


def _check_model(checkpoint: Path, sha256: str, species: Sequence[str], device: str) -> None:
    """Load the checkpoint once (pinned to the hash just taken) and check it knows every element of the data."""
    from harness.models import load_model

    model = load_model(checkpoint, device=device, dtype="float64", expected_sha256=sha256)
    unknown = [el for el in species if el not in model.elements]
    if unknown:
        raise ModelError(
            f"checkpoint {checkpoint} was trained on {', '.join(model.elements)} and does not know "
            f"{', '.join(unknown)} of the structures (fix: use structures of the model's elements, or another model)"
        )
