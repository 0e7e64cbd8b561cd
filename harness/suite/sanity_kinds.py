"""The sanity and faithfulness check kinds (issue 10): each a value with a bootstrap interval over structures."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.suite.bounds import Bootstrap, Bound, IntervalBound
from harness.suite.check_kinds import CheckBase, ShapLevelBase


class FaithfulnessBase(CheckBase):
    """Fields of the checks that report a bootstrap interval over structures."""

    bootstrap: Bootstrap = Field(default_factory=Bootstrap, description="Bootstrap over structures for the interval.")
    max_structures: int | None = Field(
        None, ge=1, description="Use only the first this-many reference structures (cost control); default all."
    )



class AttributionFaithfulnessCheck(FaithfulnessBase):
    """Do the atoms Grad-CAM ranks highest matter to the model's energy more than random atoms?

    Per structure: displace the top-k atoms by `amplitude_A` along seeded random
    unit directions (`draws` times) and record |dE|; the same for k random atoms.
    Perturbed copies of a structure are evaluated in one batch.
    """

    kind: Literal["attribution_faithfulness"] = Field(description="The check kind (the key of the list item in YAML).")
    k: int = Field(3, ge=1, description="Atoms displaced for the ratio (top-k by score vs k random).")
    k_max: int = Field(5, ge=1, description="K: the perturbation curves run over k = 1..K atoms.")
    amplitude_A: float = Field(0.1, gt=0, le=1.0, description="Displacement of each perturbed atom, Angstrom.")
    draws: int = Field(4, ge=1, le=64, description="Random draws (directions; random atom sets) per k.")
    seed: int | None = Field(None, ge=0, description="Seed of directions and random atoms; default: settings.seed.")
    top_to_random_dE_ratio: IntervalBound | None = Field(
        None,
        description="mean |dE| displacing the top-k atoms / mean |dE| displacing k random atoms "
        "(1: no better than chance).",
    )
    curve_area: IntervalBound | None = Field(
        None,
        description="(sum_k |dE|top - sum_k |dE|random) / (sum_k |dE|top + sum_k |dE|random) over k = 1..K, "
        "in [-1, 1] (0: attribution order no better than random order).",
    )

    @model_validator(mode="after")
    def _k(self) -> AttributionFaithfulnessCheck:
        if self.k > self.k_max:
            raise ValueError(f"k ({self.k}) must not exceed k_max ({self.k_max}): the ratio is read off the curve")
        return self



class RandomisationSanityCheck(FaithfulnessBase):
    """Does the Grad-CAM map depend on the trained weights (Adebayo et al., 2018)?

    The candidate's own architecture with weights re-drawn in memory (seeded,
    never written): cascading from the readout backwards one block at a time,
    the last stage being every layer. Value: Spearman correlation of per-atom
    scores, trained vs randomised, per structure, averaged.
    """

    kind: Literal["randomisation_sanity"] = Field(description="The check kind (the key of the list item in YAML).")
    cascade: bool = Field(
        True, description="Randomise cumulatively block by block from the readout; false: all layers only."
    )
    redraw: Literal["per_structure", "once"] = Field(
        "per_structure",
        description=(
            "per_structure: each structure is compared with its own independent re-draw, so the bootstrap over "
            "structures carries the variation between draws and no outcome hangs on one draw; once: one draw "
            "shared by every structure (Adebayo et al.'s single draw; its interval ignores that variation)."
        ),
    )
    seed: int | None = Field(None, ge=0, description="Seed of the re-drawn weights; default: settings.seed.")
    max_rank_correlation: IntervalBound | None = Field(
        None, description="Largest mean per-structure Spearman correlation over the cascade stages (gate with max)."
    )
    all_layers_rank_correlation: IntervalBound | None = Field(
        None, description="Mean per-structure Spearman correlation with every layer randomised."
    )



class SurrogateFaithfulnessCheck(FaithfulnessBase, ShapLevelBase):
    """Do the top SHAP features carry the surrogate's prediction on held-out structures?

    The surrogate (suite's settings) is fitted on a seeded training split and
    ranked by mean |SHAP| there; on the held-out structures the top-N features
    are replaced by their training means and the drop of R^2 is compared with
    replacing N random features (`draws` times).
    """

    kind: Literal["surrogate_faithfulness"] = Field(description="The check kind (the key of the list item in YAML).")
    top_n: int = Field(5, ge=1, description="N: features replaced by their training means.")
    draws: int = Field(20, ge=1, le=1000, description="Random draws of N features.")
    holdout_fraction: float = Field(0.3, gt=0, lt=1, description="Share of the structures held out of the fit.")
    seed: int | None = Field(
        None, ge=0, description="Seed of the split and the random features; default: settings.seed."
    )
    heldout_r2: Bound = Field(
        Bound(min=0.5), description="Surrogate R^2 on the held-out structures; gates the other metrics."
    )
    top_to_random_r2_drop_ratio: IntervalBound | None = Field(
        None,
        description="Drop of held-out R^2 removing the top-N SHAP features / mean drop removing N random features.",
    )
    top_r2_drop: IntervalBound | None = Field(
        None, description="Drop of held-out R^2 when the top-N SHAP features are replaced by their training means."
    )
