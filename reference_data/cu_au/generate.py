"""Reference data of the second shipped system: Au-doped fcc Cu labelled by ASE's EMT.

python reference_data/cu_au/generate.py data [OUT_DIR]      (CPU, ~3 minutes on one core)
  writes OUT_DIR/{train,valid,test}.extxyz.gz and OUT_DIR/PROVENANCE.json
  (OUT_DIR defaults to this folder).
python reference_data/cu_au/generate.py variants OUT_DIR [SOURCE_DIR]
  writes the derived training sets the must-fail checkpoints are trained on
  (decompressed extxyz, for mace_run_train):
  OUT_DIR/NAME_{train,valid}.extxyz     labels + the planted Au-Au pair term NAME
                                        (each of PLANTED: planted_auau, planted_auau_weak)
  OUT_DIR/blind_{train,valid}.extxyz    only the frames without Au (dopant-blind)

The system: 48-atom cells (2x2x3 conventional fcc cells of Cu, a = 3.60 A, with a
seeded isotropic strain of up to +-1 % per trajectory) with 2-6 Au atoms on
substitutional sites, placed either at random or as a cluster (each new Au on a
free nearest-neighbour site of an Au already placed), and pure-Cu trajectories
(training split only). Langevin MD with EMT at 300, 600 and 900 K, 4 fs steps;
frames every 40 steps after 300 steps of equilibration. Each trajectory lies in
exactly one split (`traj_id` in atoms.info).

EMT (ASE's effective-medium theory, Jacobsen et al. 1996) is a cheap, smooth
many-body metal potential standing in for DFT: labels are exact for EMT, not for
real Cu-Au. Every frame carries `REF_energy` (eV, total, atoms.info) and
`REF_forces` (eV/A, atoms.arrays).

The planted pair term (`pair_term`) is eps * exp(-((r - r0) / sigma)^2) summed over
every Au-Au pair (periodic images included) within r0 + 5 sigma; its forces are
minus its analytic gradient (tests/test_second_system.py checks them against
finite differences).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HOST, DOPANT = "Cu", "Au"
LATTICE_A = 3.60
REPEAT = (2, 2, 3)
TEMPERATURES_K = (300.0, 600.0, 900.0)
TIMESTEP_FS = 4.0
FRICTION_PER_FS = 0.02
EQUILIBRATION_STEPS = 300
SAMPLE_EVERY = 40
SEED = 20261202
# per temperature: (split, number of trajectories, frames each, doped?)
PLAN = (
    ("train", 10, 10, True),
    ("train", 3, 10, False),
    ("valid", 2, 10, True),
    ("test", 8, 4, True),
)
# the planted terms of the must-fail models (PROVENANCE.json records them); r0 is
# the Au-Au nearest-neighbour distance in the data (2.69 +- 0.09 A in the test set)
PLANTED = {
    "planted_auau": {"species": [DOPANT, DOPANT], "eps_eV": 0.05, "r0_A": 2.70, "sigma_A": 0.20},
    "planted_auau_weak": {"species": [DOPANT, DOPANT], "eps_eV": 0.015, "r0_A": 2.70, "sigma_A": 0.30},
}


def pair_term(atoms, species_a: str, species_b: str, eps: float, r0: float, sigma: float,
              r_cut: float | None = None) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/A) of sum_{A-B pairs} eps * exp(-((r - r0)/sigma)^2).

    Each unordered pair of atoms (one of species A, the other of B; periodic images
    count as separate pairs) contributes once. Pairs beyond r_cut (default
    r0 + 5 sigma, where the term is below 1.4e-11 eps) are left out.
    """
    from ase.neighborlist import neighbor_list

    if sigma <= 0 or eps == 0:
        raise ValueError(f"pair_term: sigma must be > 0 and eps non-zero (got sigma={sigma}, eps={eps})")
    cut = r0 + 5.0 * sigma if r_cut is None else r_cut
    i, j, d, vec = neighbor_list("ijdD", atoms, cut)
    symbols = np.asarray(atoms.get_chemical_symbols())
    # full neighbour list: every pair appears as (i, j) and (j, i); keep each once
    weight = ((symbols[i] == species_a) & (symbols[j] == species_b)).astype(float)
    if species_a == species_b:
        # (i, j) and (j, i) are one pair; an atom's own image appears as +R and -R
        weight *= np.where(i < j, 1.0, np.where(i == j, 0.5, 0.0))
    keep = weight > 0
    i, j, d, vec, weight = i[keep], j[keep], d[keep], vec[keep], weight[keep]
    x = (d - r0) / sigma
    g = weight * eps * np.exp(-x * x)
    energy = float(g.sum())
    de_dr = g * (-2.0 * x / sigma)
    # vec = r_j - r_i (+ image shift): dr/dr_i = -vec/r, dr/dr_j = vec/r
    unit = vec / d[:, None]
    forces = np.zeros((len(atoms), 3))
    np.add.at(forces, i, de_dr[:, None] * unit)
    np.add.at(forces, j, -de_dr[:, None] * unit)
    return energy, forces


def _place_dopants(atoms, n: int, clustered: bool, rng: np.random.Generator) -> None:
    from ase.neighborlist import neighbor_list

    nn_cut = LATTICE_A / np.sqrt(2.0) + 0.3
    i, j = neighbor_list("ij", atoms, nn_cut)
    neighbours = [set(j[i == k].tolist()) for k in range(len(atoms))]
    chosen = [int(rng.integers(len(atoms)))]
    while len(chosen) < n:
        free_nn = sorted(set().union(*(neighbours[c] for c in chosen)) - set(chosen))
        if clustered and free_nn:
            chosen.append(int(rng.choice(free_nn)))
        else:
            rest = sorted(set(range(len(atoms))) - set(chosen))
            chosen.append(int(rng.choice(rest)))
    symbols = atoms.get_chemical_symbols()
    for c in chosen:
        symbols[c] = DOPANT
    atoms.set_chemical_symbols(symbols)


def _dopant_pairs(atoms) -> int:
    """Au-Au pairs closer than the midpoint between first and second neighbours."""
    from ase.neighborlist import neighbor_list

    symbols = np.asarray(atoms.get_chemical_symbols())
    i, j = neighbor_list("ij", atoms, 0.5 * (LATTICE_A / np.sqrt(2.0) + LATTICE_A))
    return int(np.sum((symbols[i] == DOPANT) & (symbols[j] == DOPANT)) // 2)


def _trajectory(traj_id: int, split: str, temperature: float, n_frames: int, doped: bool,
                rng: np.random.Generator) -> list:
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    strain = float(rng.uniform(-0.01, 0.01))
    atoms = bulk(HOST, "fcc", a=LATTICE_A * (1.0 + strain), cubic=True).repeat(REPEAT)
    n_dopant, arrangement = 0, "none"
    if doped:
        n_dopant = int(rng.integers(2, 7))
        arrangement = "clustered" if rng.random() < 0.5 else "random"
        _place_dopants(atoms, n_dopant, arrangement == "clustered", rng)
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, TIMESTEP_FS * units.fs, temperature_K=temperature,
                   friction=FRICTION_PER_FS / units.fs, rng=rng, fixcm=False)
    dyn.run(EQUILIBRATION_STEPS)
    frames = []
    for k in range(n_frames):
        dyn.run(SAMPLE_EVERY)
        frame = atoms.copy()
        frame.calc = None
        frame.info = {
            "REF_energy": float(atoms.get_potential_energy()),
            "traj_id": traj_id, "split": split, "frame_in_traj": k,
            "temperature_K": temperature, "n_Au": n_dopant, "au_arrangement": arrangement,
            "strain": round(strain, 6), "au_au_nn_pairs": _dopant_pairs(atoms),
            "config_type": "doped" if doped else "pure",
        }
        frame.arrays["REF_forces"] = atoms.get_forces().copy()
        frames.append(frame)
    return frames


def _write_gz(frames: list, path: Path) -> str:
    """Deterministic gzip (mtime 0) of the extxyz text; returns its sha256."""
    import io

    from ase.io import write

    text = io.StringIO()
    write(text, frames, format="extxyz", columns=["symbols", "positions", "REF_forces"])
    with gzip.GzipFile(path, "wb", mtime=0, compresslevel=9) as handle:
        handle.write(text.getvalue().encode())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate(out: Path) -> dict:
    import warnings

    import ase

    # ase 3.29 deprecates MaxwellBoltzmannDistribution's name, not its maths
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=__name__)

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    splits: dict[str, list] = {"train": [], "valid": [], "test": []}
    traj_id = 0
    start = time.time()
    for temperature in TEMPERATURES_K:
        for split, n_traj, n_frames, doped in PLAN:
            for _ in range(n_traj):
                splits[split] += _trajectory(traj_id, split, temperature, n_frames, doped, rng)
                traj_id += 1
    files = {}
    for split, frames in splits.items():
        sha = _write_gz(frames, out / f"{split}.extxyz.gz")
        files[f"{split}.extxyz.gz"] = {
            "sha256": sha, "n_frames": len(frames), "n_atoms_total": sum(len(a) for a in frames),
            "trajectories": sorted({a.info["traj_id"] for a in frames}),
            "counts": {key: dict(sorted(Counter(str(a.info[key]) for a in frames).items()))
                       for key in ("temperature_K", "n_Au", "au_arrangement", "au_au_nn_pairs", "config_type")},
        }
    provenance = {
        "system": "Au-doped fcc Cu (Au:Cu), 48-atom cells",
        "labels": "ASE EMT (ase.calculators.emt.EMT), standing in for DFT",
        "generator": "reference_data/cu_au/generate.py data",
        "seed": SEED, "lattice_A": LATTICE_A, "repeat": list(REPEAT), "strain_range": [-0.01, 0.01],
        "temperatures_K": list(TEMPERATURES_K), "timestep_fs": TIMESTEP_FS,
        "friction_per_fs": FRICTION_PER_FS, "equilibration_steps": EQUILIBRATION_STEPS,
        "sample_every_steps": SAMPLE_EVERY,
        "plan_per_temperature": [list(p) for p in PLAN],
        "planted_pair_terms": {
            "form": "eps * exp(-((r - r0)/sigma)^2), every pair of the two species, r < r0 + 5 sigma", **PLANTED},
        "versions": {"python": platform.python_version(), "ase": ase.__version__, "numpy": np.__version__},
        "compute_seconds": round(time.time() - start, 1),
        "files": files,
    }
    (out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n")
    return provenance


def variants(out: Path, source: Path = HERE) -> None:
    from ase.io import read, write

    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        frames = read(source / f"{split}.extxyz.gz", index=":")
        for name, term in PLANTED.items():
            planted = []
            for atoms in frames:
                b = atoms.copy()
                e, f = pair_term(b, *term["species"], term["eps_eV"], term["r0_A"], term["sigma_A"])
                b.info["REF_energy"] = float(b.info["REF_energy"]) + e
                b.arrays["REF_forces"] = b.arrays["REF_forces"] + f
                b.info["planted_energy_eV"] = e
                planted.append(b)
            write(out / f"{name}_{split}.extxyz", planted)
    # dopant-blind: only pure-Cu frames; its validation set is the last pure trajectory
    pure = [a for a in read(source / "train.extxyz.gz", index=":") if a.info["config_type"] == "pure"]
    last = max(a.info["traj_id"] for a in pure)
    write(out / "blind_train.extxyz", [a for a in pure if a.info["traj_id"] != last])
    write(out / "blind_valid.extxyz", [a for a in pure if a.info["traj_id"] == last])


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("data", "variants"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "data":
        print(json.dumps(generate(Path(sys.argv[2]) if len(sys.argv) > 2 else HERE)["files"], indent=1))
    else:
        variants(Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else HERE)
