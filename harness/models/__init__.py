"""The model interface: what the harness needs from any force field.

A second MLFF family plugs in by implementing :class:`Model`; nothing in the
checks knows about MACE. Values that cross module borders are frozen
dataclasses of numpy arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from ase import Atoms

ScoreVariant = Literal["relu", "signed", "absolute"]
SCORE_VARIANTS: tuple[ScoreVariant, ...] = ("relu", "signed", "absolute")


@dataclass(frozen=True)
class ModelOutputs:
    """Energies, forces and raw Grad-CAM sums for a list of structures.

    Per-atom arrays are concatenated over structures in input order;
    ``n_atoms`` gives the split points.

    ``gradcam_raw[i] = sum_k dE_total/dA_ik * A_ik`` at the hooked layer,
    before any ReLU: the paper's score is ``relu(gradcam_raw)``.
    """

    energies_eV: np.ndarray  # (S,) total energy per structure
    forces_eV_per_A: np.ndarray  # (N, 3)
    gradcam_raw: np.ndarray  # (N,)
    n_atoms: np.ndarray  # (S,) int

    def __post_init__(self) -> None:
        n_structures = len(self.n_atoms)
        n_total = int(np.sum(self.n_atoms))
        if self.energies_eV.shape != (n_structures,):
            raise ValueError(f"energies shape {self.energies_eV.shape} != ({n_structures},)")
        if self.forces_eV_per_A.shape != (n_total, 3):
            raise ValueError(f"forces shape {self.forces_eV_per_A.shape} != ({n_total}, 3)")
        if self.gradcam_raw.shape != (n_total,):
            raise ValueError(f"gradcam shape {self.gradcam_raw.shape} != ({n_total},)")

    @property
    def offsets(self) -> np.ndarray:
        """Start index of each structure in the per-atom arrays, plus the end."""
        return np.concatenate([[0], np.cumsum(self.n_atoms)]).astype(int)

    def scores(self, variant: ScoreVariant = "relu") -> np.ndarray:
        """Per-atom Grad-CAM scores: the paper's ReLU (default), signed or absolute."""
        return gradcam_variant(self.gradcam_raw, variant)

    def per_structure(self, values: np.ndarray) -> list[np.ndarray]:
        """Split a per-atom array into one array per structure."""
        o = self.offsets
        return [values[o[i] : o[i + 1]] for i in range(len(self.n_atoms))]

    @staticmethod
    def concatenate(parts: Sequence[ModelOutputs]) -> ModelOutputs:
        """Join outputs of consecutive batches."""
        return ModelOutputs(
            energies_eV=np.concatenate([p.energies_eV for p in parts]),
            forces_eV_per_A=np.concatenate([p.forces_eV_per_A for p in parts]),
            gradcam_raw=np.concatenate([p.gradcam_raw for p in parts]),
            n_atoms=np.concatenate([p.n_atoms for p in parts]).astype(int),
        )


def gradcam_variant(raw: np.ndarray, variant: ScoreVariant) -> np.ndarray:
    """Apply the score variant to raw Grad-CAM sums."""
    if variant == "relu":
        return np.maximum(raw, 0.0)
    if variant == "signed":
        return raw.copy()
    if variant == "absolute":
        return np.abs(raw)
    raise ValueError(f"unknown Grad-CAM variant {variant!r}; use one of {SCORE_VARIANTS}")


@runtime_checkable
class Model(Protocol):
    """A force field the harness can test."""

    @property
    def name(self) -> str:
        """A label for reports (e.g. the suite's model name)."""
        ...

    @property
    def elements(self) -> tuple[str, ...]:
        """Chemical symbols the model can evaluate."""
        ...

    @property
    def identity(self) -> str:
        """A stable hash of the weights and architecture (for caching)."""
        ...

    def evaluate(
        self,
        structures: Sequence[Atoms],
        *,
        batch_size: int = 16,
        layer: str | None = None,
        progress: bool = False,
    ) -> ModelOutputs:
        """Energies, forces and raw Grad-CAM from one forward and one backward pass per batch."""
        ...

    def gradcam(self, structures: Sequence[Atoms], *, batch_size: int = 16, layer: str | None = None) -> np.ndarray:
        """Raw Grad-CAM per atom alone, as :meth:`evaluate` gives it, without forces: the backward
        pass stops at the hooked layer (the randomisation check needs no forces)."""
        ...

    def energies(self, structures: Sequence[Atoms]) -> np.ndarray:
        """Total energies (eV) of every structure from one call, without forces or Grad-CAM
        (the perturbation checks batch a structure's perturbed copies this way)."""
        ...

    def cascade_blocks(self) -> list[str]:
        """The model's blocks from the output backwards (the order of a cascading randomisation test),
        each a layer path that :meth:`randomised_copies` takes."""
        ...

    def randomised_copies(self, blocks: Sequence[str], seeds: Sequence[int]) -> Iterator[Model]:
        """One model per seed, each this model with the parameters of `blocks` re-drawn (seeded,
        from this model's trained weights; nothing is written). The iterator may re-draw one copy
        in place between items: use each model before taking the next."""
        ...


def load_model(
    path: Path | str,
    *,
    device: str = "cpu",
    dtype: str = "float64",
    name: str | None = None,
    expected_sha256: str | None = None,
    allow_unpinned: bool = True,
) -> Model:
    """Load a checkpoint as a :class:`Model`: the one place a model family is chosen (MACE today;
    a second family would be told apart here, by the file's format)."""
    from harness.models.mace.model import MaceModel

    return MaceModel.load(
        path, device=device, dtype=dtype, name=name, expected_sha256=expected_sha256, allow_unpinned=allow_unpinned
    )
