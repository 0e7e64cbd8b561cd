"""Writes the layer-randomised must-fail checkpoint (CPU, seconds).

python reference_data/scripts/make_randomised.py
  reads  reference_data/checkpoints/ft_multit.model.gz (the release candidate)
  writes reference_data/checkpoints/randomised_last_layer.model.gz: the
  candidate with its last readout, product and interaction blocks redrawn
  (harness.models.randomise.randomised_copy, seed 2018), as in the cascading model
  randomisation test of Adebayo et al. (2018).
"""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path

import torch

from harness.models.mace.model import MaceModel, cascade_blocks
from harness.models.randomise import randomised_copy

HERE = Path(__file__).resolve().parents[1] / "checkpoints"


def write_randomised(source: Path, out: Path) -> None:
    """``source`` with its last readout, product and interaction blocks redrawn (seed 2018), gzipped to ``out``."""
    model = MaceModel.load(source)
    blocks = cascade_blocks(model.module)[:3]
    randomised = randomised_copy(model.module, blocks, seed=2018)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(randomised, buffer)
    with gzip.GzipFile(out, "wb", mtime=0) as handle:
        handle.write(buffer.getvalue())
    print(f"randomised {blocks} -> {out}")


def main() -> None:
    write_randomised(HERE / "ft_multit.model.gz", HERE / "randomised_last_layer.model.gz")


if __name__ == "__main__":
    main()
