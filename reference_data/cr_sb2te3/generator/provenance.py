"""Provenance records and deterministic output writing for the generator."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from ase import Atoms

from harness.files import sha256_file

GENERATOR_VERSION: str = "1.0.0"


def derive_seed(base: int, *parts: object) -> int:
    """A 63-bit seed derived deterministically from ``base`` and ``parts``."""
    text = ":".join([str(int(base))] + [str(p) for p in parts])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def write_extxyz_gz(path: Path, frames: list[Atoms]) -> None:
    """Write ``frames`` as gzip-compressed extxyz with a fixed header (mtime=0, no name).

    Identical content gives identical bytes, hence identical sha256.
    """
    from ase.io import write

    if not frames:
        raise ValueError(f"refusing to write an empty dataset to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for a in frames:
        if a.calc is not None:
            raise RuntimeError("a frame still has a calculator attached; strip it before writing")
    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(buf.getvalue().encode())
    os.replace(tmp, path)


def write_atomic_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def counts(frames: Iterable[Atoms], keys: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Frame counts per value of each info key in ``keys``."""
    out: dict[str, dict[str, int]] = {}
    frames = list(frames)
    for k in keys:
        c = Counter(str(a.info.get(k, "")) for a in frames)
        out[k] = dict(sorted(c.items()))
    return out


def software_versions() -> dict[str, str]:
    """Versions of the packages that determine the labels."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("chgnet", "torch", "ase", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def write_provenance(
    out_dir: Path, kind: str, params: dict[str, Any], extra: dict[str, Any],
    split_frames: dict[str, list[Atoms]], count_keys: tuple[str, ...],
) -> Path:
    """Write ``out_dir/PROVENANCE.json`` for the files of ``split_frames``."""
    from .labels import MODEL_NAME

    files = {}
    for split, frames in split_frames.items():
        p = out_dir / f"{split}.extxyz.gz"
        files[p.name] = {
            "sha256": sha256_file(p),
            "n_frames": len(frames),
            "n_atoms_total": int(sum(len(a) for a in frames)),
            "counts": counts(frames, count_keys),
        }
    record = {
        "dataset": kind,
        "generator": "reference_data/cr_sb2te3/generate.py",
        "generator_version": GENERATOR_VERSION,
        "labels": {
            "method": "CHGNet single point (stand-in for DFT)",
            "model_name": MODEL_NAME,
            "energy_key": "REF_energy (info, eV, total)",
            "forces_key": "REF_forces (arrays, eV/A)",
            "stress_key": "REF_stress (info, Voigt xx yy zz yz xz xy, eV/A^3, ASE sign)",
        },
        "software": software_versions(),
        "parameters": params,
        "files": files,
        **extra,
    }
    path = out_dir / "PROVENANCE.json"
    write_atomic_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path
