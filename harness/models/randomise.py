"""Model randomisation (Adebayo et al., 2018): attributions of a model whose
weights were re-initialised must change. Torch only; the block order comes
from the model family's adapter (for MACE: readout, product, interaction of
the last layer first, then backwards).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from harness.models.attribution import resolve_layer


def randomised_copy(module: torch.nn.Module, blocks: Sequence[str], *, seed: int = 0) -> torch.nn.Module:
    """A deep copy whose parameters in `blocks` are redrawn (see :func:`redraw`)."""
    copied = copy.deepcopy(module)
    redraw(copied, module, blocks, seed=seed)
    return copied


def redraw(target: torch.nn.Module, source: torch.nn.Module, blocks: Sequence[str], *, seed: int) -> None:
    """Re-draw, in place, the parameters of `blocks` in `target` (a copy of `source`).

    Each parameter tensor with more than one element becomes Gaussian noise of
    the mean and standard deviation of the same tensor in `source` (its scale is
    kept, so the network stays numerically sane; its learned structure is gone).
    Buffers (atomic energies, scale and shift) and other blocks are left alone.
    Deterministic for a seed; the draws follow the order of `blocks`, so the
    re-draws of a cascade's stages agree on the blocks they share.
    """
    generator = torch.Generator().manual_seed(seed)
    for path in blocks:
        mine, theirs = resolve_layer(target, path), resolve_layer(source, path)
        for parameter, trained in zip(mine.parameters(), theirs.parameters(), strict=True):
            if parameter.numel() < 2:
                continue
            # drawn on the CPU in float64 whatever the model's device, so a seed
            # gives the same weights on every device
            std, mean = (float(v) for v in (trained.detach().std(), trained.detach().mean()))
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            with torch.no_grad():
                parameter.copy_((noise * std + mean).to(device=parameter.device, dtype=parameter.dtype))


def structure_seed(seed: int, structure: int) -> int:
    """The seed of structure `structure`'s own re-draw: independent streams per structure."""
    return int(np.random.SeedSequence([seed, structure]).generate_state(1, dtype=np.uint64)[0] >> 1)


def cascade_stages(blocks: Sequence[str], *, cascade: bool = True) -> list[tuple[str, list[str]]]:
    """The randomisation stages of a sanity check, each (label, blocks to re-draw).

    With `cascade`, stage i re-draws blocks[0..i] (cumulative from the output
    backwards, Adebayo et al.'s cascading randomisation), labelled by the block
    it adds; the last stage re-draws every block. Without, one stage 'all'.
    """
    blocks = list(blocks)
    if not blocks:
        raise ValueError("no blocks to randomise")
    if not cascade:
        return [("all", blocks)]
    return [(block, blocks[: i + 1]) for i, block in enumerate(blocks)]
