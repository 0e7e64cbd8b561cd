"""Benchmark inputs: 120-atom Cr:Sb2Te3 frames and MACE models of three sizes.

Reading extxyz.gz with ASE costs ~30 ms a frame, so frames are cached as a
pickle (``MLFF_BENCH_CACHE``, default ``/tmp/mlff-harness-bench``). Nothing
runs at import (asv imports every module of ``benchmarks/``).
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("test", "valid", "train")
DATA_DIR = ROOT / "reference_data" / "cr_sb2te3"
CHECKPOINT = ROOT / "reference_data" / "checkpoints" / "ft_multit.model.gz"
CHECKPOINT_SHA256 = "dcf008936e7c11dc23382eb1d6257870d4a7a5f409597c885f96e57c1fa616cd"
ELEMENTS = ("Cr", "Sb", "Te")

# Tiny random MACE models (harness.models.mace.tiny.build_tiny_mace), r_max 6 A as the paper's.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "small": dict(num_channels=16, max_L=0, num_interactions=2, r_max=6.0),
    "medium": dict(num_channels=64, max_L=1, num_interactions=2, r_max=6.0),
}
MODELS = ("small", "medium", "shipped")


def cache_dir() -> Path:
    path = Path(os.environ.get("MLFF_BENCH_CACHE", "/tmp/mlff-harness-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def real_frames(n: int, *, n_atoms: int | None = 120, splits: tuple[str, ...] = SPLITS) -> list:
    """Up to ``n`` reference frames (test, then valid, then train), optionally of one size."""
    from ase.io import iread

    key = f"frames-{'-'.join(splits)}-{n_atoms}-{n}.pkl"
    path = cache_dir() / key
    if path.is_file():
        with open(path, "rb") as handle:
            return pickle.load(handle)
    out: list = []
    for split in splits:
        for atoms in iread(DATA_DIR / f"{split}.extxyz.gz"):
            if n_atoms is None or len(atoms) == n_atoms:
                out.append(atoms)
            if len(out) >= n:
                break
        if len(out) >= n:
            break
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(out, handle)
    os.replace(tmp, path)
    return out


def frames(n: int, *, n_atoms: int | None = 120, rattle_A: float = 0.02) -> list:
    """``n`` frames: real ones first, then rattled copies of them (new positions, same cells)."""
    real = real_frames(n, n_atoms=n_atoms)
    if not real:
        raise RuntimeError(f"no {n_atoms}-atom frames under {DATA_DIR}")
    out = list(real)
    k = 0
    while len(out) < n:
        atoms = real[k % len(real)].copy()
        atoms.rattle(rattle_A, seed=10_000 + k)
        out.append(atoms)
        k += 1
    return out[:n]


def make_model(size: str, dtype: str, device: str):
    """A :class:`harness.models.mace.model.MaceModel` of ``size`` (small, medium or shipped)."""
    from harness.models.mace.model import MaceModel
    from harness.models.mace.tiny import build_tiny_mace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if size == "shipped":
            return MaceModel.load(CHECKPOINT, dtype=dtype, device=device, expected_sha256=CHECKPOINT_SHA256)
        if size not in MODEL_SIZES:
            raise ValueError(f"unknown model size {size!r}; use one of {MODELS}")
        module = build_tiny_mace(ELEMENTS, seed=0, dtype=dtype, **MODEL_SIZES[size])
        return MaceModel.from_module(module, name=size, dtype=dtype, device=device)


def n_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.module.parameters()))


def energy_residual_per_atom(structures: list) -> np.ndarray:
    """A realistic surrogate target without running a model: the per-atom reference
    energy minus its least-squares fit on composition (what SOAP must explain)."""
    counts = np.array([[a.get_chemical_symbols().count(e) for e in ELEMENTS] for a in structures], float)
    energy = np.array([a.info["REF_energy"] for a in structures], float)
    coef, *_ = np.linalg.lstsq(counts, energy, rcond=None)
    n = counts.sum(axis=1)
    return (energy - counts @ coef) / n
