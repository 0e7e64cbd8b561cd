"""Training sets for the models the gate must fail.

- ``relabel``: every atom of one element renamed to another (labels unchanged):
  a model trained on it never sees the dopant (dopant-blind).
- ``planted``: labels plus a known Cr-Cr pair term, so that a model trained on
  them has an energy error that is a known function of Cr-Cr geometry:
  E_planted = E_ref + A * sum_{Cr-Cr pairs, r < r_c} cos^2(pi r / (2 r_c)),
  forces = F_ref - dE_planted/dR (analytic). The harness's SHAP must then rank
  Cr-Cr features first (a known-answer test).

Usage: python reference_data/cr_sb2te3/generate.py variants relabel|planted --in IN --out OUT [...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def pair_term(atoms, element: str, amplitude_eV: float, r_cut_A: float) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/A) of A * sum_{pairs of `element`} cos^2(pi r / 2 r_c), r < r_c."""
    from ase.neighborlist import neighbor_list

    forces = np.zeros((len(atoms), 3))
    mask = np.array(atoms.get_chemical_symbols()) == element
    if mask.sum() < 2 and not np.any(atoms.pbc):
        return 0.0, forces
    i, j, d, D = neighbor_list("ijdD", atoms, r_cut_A)
    keep = mask[i] & mask[j]
    i, j, d, D = i[keep], j[keep], d[keep], D[keep]
    x = np.pi * d / (2 * r_cut_A)
    energy = 0.5 * amplitude_eV * float(np.sum(np.cos(x) ** 2))  # each pair appears twice in (i, j)
    # dE/dd for one ordered pair (half weight): 0.5 * A * (-sin(2x)) * pi / (2 r_c)
    de_dd = 0.5 * amplitude_eV * (-np.sin(2 * x)) * np.pi / (2 * r_cut_A)
    unit = D / d[:, None]  # vector from i to j
    # d(d)/d(r_j) = unit, d(d)/d(r_i) = -unit; F = -dE/dr
    np.add.at(forces, j, -de_dd[:, None] * unit)
    np.add.at(forces, i, de_dd[:, None] * unit)
    return energy, forces


def _read(path: str):
    from ase.io import read

    return read(path, index=":")


def _write(path: str, frames) -> None:
    import gzip

    from ase.io import write

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gz":
        with gzip.GzipFile(out, "wb", mtime=0) as raw:
            import io

            text = io.StringIO()
            write(text, frames, format="extxyz")
            raw.write(text.getvalue().encode())
    else:
        write(out, frames, format="extxyz")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="generate.py variants", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("relabel", help="rename every atom of one element")
    r.add_argument("--from", dest="src", default="Cr")
    r.add_argument("--to", dest="dst", default="Sb")
    p = sub.add_parser("planted", help="add a known Cr-Cr pair term to the labels")
    p.add_argument("--element", default="Cr")
    p.add_argument("--amplitude-eV", type=float, default=0.1)
    p.add_argument("--r-cut-A", type=float, default=5.0)
    for s in (r, p):
        s.add_argument("--in", dest="src_file", required=True)
        s.add_argument("--out", required=True)
        s.add_argument("--energy-key", default="REF_energy")
        s.add_argument("--forces-key", default="REF_forces")
    args = parser.parse_args(argv)
    frames = _read(args.src_file)
    for atoms in frames:
        if args.cmd == "relabel":
            symbols = [args.dst if s == args.src else s for s in atoms.get_chemical_symbols()]
            atoms.set_chemical_symbols(symbols)
        else:
            energy, forces = pair_term(atoms, args.element, args.amplitude_eV, args.r_cut_A)
            atoms.info[args.energy_key] = float(atoms.info[args.energy_key]) + energy
            atoms.arrays[args.forces_key] = atoms.arrays[args.forces_key] + forces
            atoms.info["planted_energy_eV"] = energy
    _write(args.out, frames)
    print(f"wrote {len(frames)} frames to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
