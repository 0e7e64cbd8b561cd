"""Writes the derived training sets the checkpoints are trained on.

python scripts/gpu/make_training_sets.py OUT_DIR [SOURCE_DIR]
  SOURCE_DIR holds {train,valid}.extxyz (decompressed: reading the .gz files
  frame by frame through ase was 100x slower on the GPU machine)
  OUT_DIR/t600_{train,valid}.extxyz      doped frames at 600 K only (FT-600K)
  OUT_DIR/blind_{train,valid}.extxyz     Cr relabelled as Sb (dopant-blind)
  OUT_DIR/planted_{train,valid}.extxyz   labels + 0.3 eV * sum_CrCr cos^2(pi r / 10 A) (planted signal)
"""

from __future__ import annotations

import sys
from pathlib import Path

from ase.io import read, write

HERE = Path(__file__).resolve().parents[1] / "cr_sb2te3"
sys.path.insert(0, str(HERE))  # the example's generator package, reference_data/cr_sb2te3/generator

from generator.variants import pair_term  # noqa: E402

PLANTED_AMPLITUDE_EV = 0.3
PLANTED_R_CUT_A = 5.0


def main(out: Path, source: Path = HERE) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        plain = source / f"{split}.extxyz"
        frames = read(plain if plain.is_file() else source / f"{split}.extxyz.gz", index=":")
        write(out / f"t600_{split}.extxyz", [a for a in frames if float(a.info["temperature_K"]) == 600.0])
        blind = []
        for a in frames:
            b = a.copy()
            b.set_chemical_symbols(["Sb" if s == "Cr" else s for s in b.get_chemical_symbols()])
            blind.append(b)
        write(out / f"blind_{split}.extxyz", blind)
        planted = []
        for a in frames:
            b = a.copy()
            e, f = pair_term(b, "Cr", PLANTED_AMPLITUDE_EV, PLANTED_R_CUT_A)
            b.info["REF_energy"] = float(b.info["REF_energy"]) + e
            b.arrays["REF_forces"] = b.arrays["REF_forces"] + f
            b.info["planted_energy_eV"] = e
            planted.append(b)
        write(out / f"planted_{split}.extxyz", planted)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else HERE)
