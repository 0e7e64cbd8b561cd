"""Writes the layer-randomised Au:Cu must-fail checkpoint (CPU, seconds).

python reference_data/cu_au/make_randomised.py
  reads  reference_data/checkpoints/cu_au/good.model.gz (the release candidate)
  writes reference_data/checkpoints/cu_au/randomised_last_layer.model.gz: the
  candidate with its last readout, product and interaction blocks redrawn
  (harness.randomise.randomised_copy, seed 2018), as for the Cr:Sb2Te3 example
  (reference_data/scripts/make_randomised.py).
"""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path

import torch

from harness.mace_adapter import MaceModel, cascade_blocks
from harness.randomise import randomised_copy

HERE = Path(__file__).resolve().parents[1] / "checkpoints" / "cu_au"


def main() -> None:
    model = MaceModel.load(HERE / "good.model.gz")
    blocks = cascade_blocks(model.module)[:3]
    randomised = randomised_copy(model.module, blocks, seed=2018)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(randomised, buffer)
    with gzip.GzipFile(HERE / "randomised_last_layer.model.gz", "wb", mtime=0) as handle:
        handle.write(buffer.getvalue())
    print(f"randomised {blocks} -> {HERE / 'randomised_last_layer.model.gz'}")


if __name__ == "__main__":
    main()
