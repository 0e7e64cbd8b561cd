"""Tiny random MACE models for tests and examples (no training, no download)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase.data import atomic_numbers as ASE_ATOMIC_NUMBERS

from harness.errors import ModelError
from harness.models.mace._imports import _as_dtype, _default_dtype, _mace, _quiet_torchscript


def build_tiny_mace(
    elements: Sequence[str],
    *,
    seed: int = 0,
    num_channels: int = 8,
    max_L: int = 1,
    num_interactions: int = 2,
    r_max: float = 4.0,
    dtype: str = "float64",
    scale_shift: bool = False,
) -> torch.nn.Module:
    """A small randomly initialised MACE (or ScaleShiftMACE), deterministic for a seed.

    Leaves torch's global RNG and default dtype as they were.
    """
    unknown = [e for e in elements if e not in ASE_ATOMIC_NUMBERS]
    if unknown or not elements:
        raise ModelError(f"build_tiny_mace: need known chemical symbols, got {list(elements)}")
    mace = _mace()
    o3, modules = mace.o3, mace.modules
    zs = sorted({ASE_ATOMIC_NUMBERS[e] for e in elements})
    torch_dtype = _as_dtype(dtype)
    rng = np.random.default_rng(seed)
    atomic_energies = -rng.uniform(1.0, 5.0, size=len(zs))
    hidden_irreps = (o3.Irreps.spherical_harmonics(max_L) * num_channels).sort()[0].simplify()
    kwargs: dict[str, Any] = dict(
        r_max=r_max,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=max(2, max_L),
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=num_interactions,
        num_elements=len(zs),
        hidden_irreps=hidden_irreps,
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=atomic_energies,
        avg_num_neighbors=8.0,
        atomic_numbers=zs,
        correlation=2,
        gate=torch.nn.functional.silu,
        radial_MLP=[16, 16],
    )
    with torch.random.fork_rng(devices=[]), _default_dtype(torch_dtype), warnings.catch_warnings():
        _quiet_torchscript()
        torch.manual_seed(seed)
        if scale_shift:
            module = modules.ScaleShiftMACE(
                atomic_inter_scale=1.3, atomic_inter_shift=-0.2, **kwargs
            )
        else:
            module = modules.MACE(**kwargs)
    return module.to(torch_dtype)
