"""CHGNet calculator wrapper and single-point labelling.

CHGNet is imported only inside functions: importing this module is free.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

MODEL_NAME: str = "0.3.0"
_MODEL_CACHE: dict[tuple[str, str], Any] = {}
_CALC_CACHE: dict[tuple[str, str, str, str], Any] = {}


def chgnet_version() -> str:
    """The installed chgnet package version."""
    from importlib.metadata import version

    return version("chgnet")


def load_model(device: str, model_name: str = MODEL_NAME) -> Any:
    """Load (once per process) the pretrained CHGNet ``model_name`` on ``device``."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    key = (model_name, device)
    if key not in _MODEL_CACHE:
        try:
            from chgnet.model import CHGNet
        except ImportError as exc:  # pragma: no cover - environment problem
            raise RuntimeError(
                "chgnet is not installed in this environment; install chgnet==0.4.2"
            ) from exc
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
        model = CHGNet.load(model_name=model_name, use_device=device, verbose=False)
        model.eval()
        _MODEL_CACHE[key] = model
    return _MODEL_CACHE[key]


def make_calculator(
    device: str, task: str = "ef", model_name: str = MODEL_NAME, purpose: str = "md"
) -> Any:
    """An ASE calculator running CHGNet with a fixed prediction ``task``.

    ``task="ef"`` (energy+forces) is what MD needs; "efs" adds the stress.
    One calculator per (device, task, model, purpose) per process is cached; do not
    attach the same one to two Atoms objects at once.
    """
    key = (device, task, model_name, purpose)
    if key in _CALC_CACHE:
        return _CALC_CACHE[key]
    from chgnet.model.dynamics import CHGNetCalculator

    class _TaskCalculator(CHGNetCalculator):  # type: ignore[misc]
        def calculate(
            self,
            atoms: Atoms | None = None,
            properties: list | None = None,
            system_changes: list | None = None,
            task: str = task,
        ) -> None:
            super().calculate(atoms, properties, system_changes, task=task)

    calc = _TaskCalculator(
        model=load_model(device, model_name), use_device=device, on_isolated_atoms="ignore"
    )
    _CALC_CACHE[key] = calc
    return calc


def label(atoms: Atoms, device: str, with_stress: bool = True) -> Atoms:
    """A copy of ``atoms`` carrying a fresh CHGNet single point as REF_* keys.

    REF_energy (eV, total) and REF_stress (Voigt xx yy zz yz xz xy, eV/A^3) go
    to ``info``; REF_forces (eV/A) to ``arrays``. No calculator stays attached,
    so ase's extxyz writer stores exactly these keys.
    """
    out = atoms.copy()
    out.calc = None
    for key in ("momenta", "initial_magmoms", "REF_forces"):
        if key in out.arrays:
            del out.arrays[key]
    work = Atoms(
        numbers=out.numbers, positions=out.positions, cell=out.cell, pbc=out.pbc
    )
    calc = make_calculator(device, "efs" if with_stress else "ef", purpose="label")
    calc.calculate(work, ["energy", "forces"] + (["stress"] if with_stress else []), None)
    res = calc.results
    energy = float(np.asarray(res["energy"]).reshape(-1)[0])
    forces = np.asarray(res["forces"], dtype=float).reshape(len(out), 3)
    if not np.isfinite(energy) or not np.isfinite(forces).all():
        raise RuntimeError(f"CHGNet returned non-finite labels for {out.get_chemical_formula()}")
    out.info["REF_energy"] = energy
    out.arrays["REF_forces"] = forces
    if with_stress and "stress" in res:
        stress = np.asarray(res["stress"], dtype=float)
        if stress.size == 9:
            stress = full_3x3_to_voigt_6_stress(stress.reshape(3, 3))
        out.info["REF_stress"] = stress.reshape(6)
    out.calc = None
    return out


def pretrain_task(chunk: dict[str, Any], device: str, out_dir: str) -> dict[str, Any]:
    """Label one chunk of pre-training structures; write ``out_dir/<id>.extxyz``."""
    import time
    from pathlib import Path

    from ase.io import write

    from .provenance import derive_seed
    from .structures import pretrain_structure

    t0 = time.perf_counter()
    frames = []
    for i, fam in zip(chunk["indices"], chunk["families"]):
        rng = np.random.default_rng(derive_seed(chunk["seed"], "pretrain", i))
        atoms = pretrain_structure(fam, rng)
        atoms.info["index"] = int(i)
        frames.append(label(atoms, device, with_stress=True))
    path = Path(out_dir) / f"{chunk['id']}.extxyz"
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, frames, format="extxyz")
    tmp.replace(path)
    return {"wall_seconds": time.perf_counter() - t0, "n": len(frames)}
