"""Langevin NVT molecular dynamics with CHGNet and frame extraction.

Time step: the default 4 fs is safe here. The stiffest modes of Cr-doped
Sb2Te3 are the Cr-Te / Sb-Te stretches, below ~8.5 THz (~280 cm^-1), i.e. a
shortest phonon period > 120 fs; 4 fs resolves it with > 30 steps per period
(the usual rule asks for >= 10-20), and there are no light atoms (lightest is
Cr, 52 u) so Verlet energy drift stays small even at 1200 K.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from ase import Atoms, units

from .structures import doped_cell


@dataclass(frozen=True)
class TrajectorySpec:
    """Everything needed to reproduce one MD trajectory."""

    trajectory: str
    config_index: int
    n_Cr: int
    cr_sites: str
    cr_arrangement: str
    config_seed: int
    temperature_K: float
    seed: int
    frames: int
    spacing: int
    equil_steps: int
    timestep_fs: float
    friction_per_fs: float
    rattle_A: float = 0.02

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def initial_structure(spec: TrajectorySpec) -> Atoms:
    """The ideal doped cell of the spec (site choice seeded by ``config_seed``)."""
    return doped_cell(
        spec.n_Cr, spec.cr_sites, spec.cr_arrangement, np.random.default_rng(spec.config_seed)
    )


def run_trajectory(spec: TrajectorySpec, device: str) -> tuple[list[Atoms], dict[str, Any]]:
    """Run one Langevin trajectory; return labelled frames and timing stats.

    The ideal structure is rattled by ``rattle_A`` (Gaussian, seeded), given
    Maxwell-Boltzmann velocities at T, equilibrated for ``equil_steps`` and then
    one frame is kept every ``spacing`` steps. Each frame is labelled by a fresh
    CHGNet single point (energy, forces, stress), not the MD force cache.
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from .labels import label, make_calculator

    rng = np.random.default_rng(spec.seed)
    atoms = initial_structure(spec)
    atoms.positions += rng.normal(0.0, spec.rattle_A, atoms.positions.shape)
    MaxwellBoltzmannDistribution(atoms, temperature_K=spec.temperature_K, rng=rng)
    Stationary(atoms)
    atoms.calc = make_calculator(device, "ef")
    dyn = Langevin(
        atoms,
        timestep=spec.timestep_fs * units.fs,
        temperature_K=spec.temperature_K,
        friction=spec.friction_per_fs / units.fs,
        rng=rng,
        fixcm=True,
    )
    t0 = time.perf_counter()
    if spec.equil_steps > 0:
        dyn.run(spec.equil_steps)
    t_md = time.perf_counter() - t0
    n_steps = spec.equil_steps
    frames: list[Atoms] = []
    t_label = 0.0
    temps: list[float] = []
    for k in range(spec.frames):
        t0 = time.perf_counter()
        dyn.run(spec.spacing)
        t_md += time.perf_counter() - t0
        n_steps += spec.spacing
        temps.append(float(atoms.get_temperature()))
        snap = Atoms(
            numbers=atoms.numbers, positions=atoms.get_positions(wrap=True),
            cell=atoms.cell, pbc=True,
        )
        snap.info.update(
            config_type="doped",
            n_Cr=spec.n_Cr,
            cr_sites=spec.cr_sites,
            cr_arrangement=spec.cr_arrangement,
            temperature_K=float(spec.temperature_K),
            trajectory=spec.trajectory,
            frame=k,
            md_step=n_steps,
            md_temperature_K=temps[-1],
        )
        t0 = time.perf_counter()
        frames.append(label(snap, device, with_stress=True))
        t_label += time.perf_counter() - t0
        e = frames[-1].info["REF_energy"]
        if not np.isfinite(e) or np.abs(frames[-1].arrays["REF_forces"]).max() > 50.0:
            raise RuntimeError(
                f"trajectory {spec.trajectory} blew up at frame {k} (|F|max > 50 eV/A); "
                "lower --timestep-fs"
            )
    atoms.calc = None
    stats = {
        "md_steps": n_steps,
        "md_seconds": t_md,
        "seconds_per_md_step": t_md / max(n_steps, 1),
        "label_seconds": t_label,
        "seconds_per_label": t_label / max(len(frames), 1),
        "mean_md_temperature_K": float(np.mean(temps)) if temps else float("nan"),
    }
    return frames, stats


# Worker entry points for the spawn pool of ``generate.py`` (they
# must live outside the script, which spawned children do not re-import).
def init_worker() -> None:
    """Pool initializer: one torch thread per worker, quiet warnings."""
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")


def doped_task(spec_d: dict[str, Any], device: str, out_dir: str) -> dict[str, Any]:
    """Run one trajectory and write its frames atomically to ``out_dir/<id>.extxyz``."""
    from pathlib import Path

    from ase.io import write

    spec = TrajectorySpec(**spec_d)
    t0 = time.perf_counter()
    frames, stats = run_trajectory(spec, device)
    path = Path(out_dir) / f"{spec.trajectory}.extxyz"
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, frames, format="extxyz")
    tmp.replace(path)
    stats["wall_seconds"] = time.perf_counter() - t0
    return stats
