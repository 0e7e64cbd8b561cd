"""Writes the layer-randomised Au:Cu must-fail checkpoint (CPU, seconds).

python reference_data/cu_au/make_randomised.py
  reads  reference_data/checkpoints/cu_au/good.model.gz (the release candidate)
  writes reference_data/checkpoints/cu_au/randomised_last_layer.model.gz: the
  candidate with its last readout, product and interaction blocks redrawn
  (harness.models.randomise.randomised_copy, seed 2018), as for the Cr:Sb2Te3 example
  (reference_data/scripts/make_randomised.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "checkpoints" / "cu_au"


def main() -> None:
    # the Cr:Sb2Te3 example's writer, one piece of code for both systems
    spec = importlib.util.spec_from_file_location("make_randomised", ROOT / "scripts" / "make_randomised.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_randomised(HERE / "good.model.gz", HERE / "randomised_last_layer.model.gz")


if __name__ == "__main__":
    main()
