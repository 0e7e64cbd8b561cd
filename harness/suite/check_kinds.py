"""The check kinds of a suite file.

One strict model per kind, each naming what it measures and the bounds it is gated on.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from harness.suite.bounds import CANDIDATE, Bound, Strict, _element


class CheckBase(Strict):
    """Fields every check has."""

    name: str | None = Field(None, description="A unique name for reports; defaults to the check kind.")
    models: list[str] = Field(
        [CANDIDATE],
        min_length=1,
        description="Models this check runs on: names from `models`, or 'all'.",
    )

    def bounds(self) -> dict[str, Bound]:
        """The metrics this check gates, with their thresholds."""
        return {k: v for k, v in self if isinstance(v, Bound)}



def group_label(value: Any) -> str:
    """How a group value of atoms.info is named in suites and reports (600.0 -> '600', True -> 'true')."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars from extxyz
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    raise ValueError(f"group value {value!r} must be a string, number or boolean")



class ElementAccuracy(Strict):
    """Force errors on the atoms of one element (force components of those atoms only)."""

    force_rmse_meV_per_A: Bound | None = Field(None, description="RMSE of the element's force components, meV/A.")
    force_mae_meV_per_A: Bound | None = Field(None, description="MAE of the element's force components, meV/A.")



class GroupAccuracy(Strict):
    """Errors on the structures of one group (one value of the check's `group_by` key)."""

    energy_rmse_meV_per_atom: Bound | None = Field(None, description="RMSE of per-atom energies, meV/atom.")
    energy_mae_meV_per_atom: Bound | None = Field(None, description="MAE of per-atom energies, meV/atom.")
    force_rmse_meV_per_A: Bound | None = Field(None, description="RMSE of force components, meV/A.")
    force_mae_meV_per_A: Bound | None = Field(None, description="MAE of force components, meV/A.")



class AccuracyCheck(CheckBase):
    """Energy and force errors against the reference labels, overall, per element and per group.

    Per-element force errors and (with `group_by`) per-group errors are always
    reported; `per_element` and `per_group` gate them, e.g.
    `per_element: {Fe: {force_rmse_meV_per_A: {max: 80}}}` (metric
    `per_element.Fe.force_rmse_meV_per_A` in reports).
    """

    kind: Literal["accuracy"] = Field(description="The check kind (the key of the list item in YAML).")
    energy_rmse_meV_per_atom: Bound | None = Field(None, description="RMSE of per-atom energies, meV/atom.")
    energy_mae_meV_per_atom: Bound | None = Field(None, description="MAE of per-atom energies, meV/atom.")
    force_rmse_meV_per_A: Bound | None = Field(None, description="RMSE of force components, meV/A.")
    force_mae_meV_per_A: Bound | None = Field(None, description="MAE of force components, meV/A.")
    per_element: dict[str, ElementAccuracy] = Field(
        default_factory=dict,
        description="Force-error bounds per element symbol, e.g. {Fe: {force_rmse_meV_per_A: {max: 80}}}.",
    )
    group_by: str | None = Field(
        None, min_length=1, description="atoms.info key that groups structures for per-group errors (e.g. config_type)."
    )
    per_group: dict[str, GroupAccuracy] = Field(
        default_factory=dict,
        description="Error bounds per value of `group_by` (numbers are written as in YAML: 600.0 -> '600').",
    )

    @field_validator("per_element")
    @classmethod
    def _element_keys(cls, value: dict[str, ElementAccuracy]) -> dict[str, ElementAccuracy]:
        for element, body in value.items():
            _element(element)
            if not any(isinstance(v, Bound) for _, v in body):
                raise ValueError(
                    f"per_element.{element} has no threshold: give force_rmse_meV_per_A or force_mae_meV_per_A"
                )
        return value

    @field_validator("per_group", mode="before")
    @classmethod
    def _group_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {group_label(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _groups(self) -> AccuracyCheck:
        if self.per_group and self.group_by is None:
            raise ValueError("per_group needs 'group_by' (the atoms.info key whose values name the groups)")
        for label, group_bounds in self.per_group.items():
            if not any(isinstance(v, Bound) for _, v in group_bounds):
                raise ValueError(f"per_group.{label} has no threshold: bound one of its metrics")
        return self

    def bounds(self) -> dict[str, Bound]:
        """Top-level metrics, then `per_element.<El>.<metric>` and `per_group.<label>.<metric>`."""
        out = super().bounds()
        for element, body in self.per_element.items():
            out.update({f"per_element.{element}.{k}": v for k, v in body if isinstance(v, Bound)})
        for label, group_bounds in self.per_group.items():
            out.update({f"per_group.{label}.{k}": v for k, v in group_bounds if isinstance(v, Bound)})
        return out



class GradcamLocusCheck(CheckBase):
    """'Where': does the model's Grad-CAM focus on an element (e.g. the dopant)?"""

    kind: Literal["gradcam_locus"] = Field(description="The check kind (the key of the list item in YAML).")
    element: str = Field(description="The element the model should look at (e.g. a dopant).")
    top_k: int = Field(10, ge=1, description="Atoms per structure counted in top_k_share.")
    mean_ratio_to_host: Bound | None = Field(
        None, description="Mean score of `element` / mean score of every other atom."
    )
    top_k_share: Bound | None = Field(
        None,
        description="Share of each structure's top_k atoms that are `element`, averaged over structures "
        "that contain it.",
    )
    relu_zero_fraction: Bound | None = Field(
        None, description="Fraction of atoms whose raw score is <= 0 (set to zero by the ReLU)."
    )
    element_mean_score: Bound | None = Field(None, description="Mean (normalised) score of `element`.")
    overall_mean_score: Bound | None = Field(None, description="Mean (normalised) score of every atom.")

    @field_validator("element")
    @classmethod
    def _element_symbol(cls, value: str) -> str:
        return _element(value)



IfUnexplained = Literal["fail", "pass", "skip"]



IF_UNEXPLAINED_DEFAULT: IfUnexplained = "skip"



class ShapLevelBase(CheckBase):
    """Fields of every check that reads a surrogate's SHAP values (the 'what' level).

    A SHAP ranking is evidence only when the surrogate explains the model's
    error (its R^2 within the check's bound). When it does not, the check cannot
    judge any feature: ``if_unexplained`` says what the outcome is then.
    """

    if_unexplained: IfUnexplained = Field(
        IF_UNEXPLAINED_DEFAULT,
        description="When the surrogate does not explain the model's error (R^2 below its bound), no feature "
        "is judged and the outcome is: 'fail' (the check fails), 'pass' (it passes, reported as inconclusive) "
        "or 'skip' (pytest skips it, reported as inconclusive). Default 'skip': in the shipped calibration every "
        "model the SHAP level catches has an error the surrogate explains well (R^2 0.79 for a planted dopant "
        "pair term, 0.975 for a dopant-blind model), while good models sit at 0.66-0.81 and an excellent model "
        "whose remaining error is noise has none to explain; failing them says nothing about the model, and a skip "
        "stays visible in "
        "pytest's summary and JUnit.",
    )



class ShapClassesCheck(ShapLevelBase):
    """'What': which SOAP feature classes drive the surrogate of the model's error."""

    kind: Literal["shap_classes"] = Field(description="The check kind (the key of the list item in YAML).")
    surrogate_cv_r2: Bound = Field(
        Bound(min=0.7), description="Cross-validated R^2 of the surrogate; gates every other metric."
    )
    top_n: int = Field(20, ge=1, description="Number of top SHAP features the shares count.")
    involving: str | None = Field(None, description="Element for involving_share (e.g. a dopant).")
    involving_share: Bound | None = Field(
        None, description="Share of the top_n features whose pair involves `involving`."
    )
    angular_l: list[int] | None = Field(None, description="Angular channels l counted in angular_l_share.")
    angular_l_share: Bound | None = Field(None, description="Share of the top_n features with l in `angular_l`.")
    radial_n: list[int] | None = Field(
        None, description="Radial indices (1-based) counted in radial_n_share: a feature counts if n or n' is listed."
    )
    radial_n_share: Bound | None = Field(None, description="Share of the top_n features with n or n' in `radial_n`.")
    pair: list[str] | None = Field(None, description="A species pair such as [Fe, O] for pair_share.")
    pair_share: Bound | None = Field(None, description="Share of the top_n features of species pair `pair`.")
    top_feature_pair: list[str] | None = Field(
        None, description="The species pair the first-ranked feature must have (e.g. [Fe, Fe])."
    )
    must_include: list[str] = Field(
        default_factory=list, description="Feature-name regular expressions that must match one of the top_n."
    )

    @model_validator(mode="after")
    def _pairs(self) -> ShapClassesCheck:
        for field in ("pair", "top_feature_pair"):
            value = getattr(self, field)
            if value is not None:
                if len(value) != 2:
                    raise ValueError(f"{field} must name two elements, e.g. [Fe, O]")
                for v in value:
                    _element(v)
        if self.involving is not None:
            _element(self.involving)
        if self.involving_share is not None and self.involving is None:
            raise ValueError("involving_share needs 'involving' (the element)")
        if self.angular_l_share is not None and not self.angular_l:
            raise ValueError("angular_l_share needs 'angular_l' (a list of l values)")
        if self.radial_n_share is not None and not self.radial_n:
            raise ValueError("radial_n_share needs 'radial_n' (a list of radial indices, 1-based)")
        if self.radial_n and any(n < 1 for n in self.radial_n):
            raise ValueError("radial indices are 1-based: use n >= 1")
        if self.pair_share is not None and self.pair is None:
            raise ValueError("pair_share needs 'pair' (two elements)")
        for pattern in self.must_include:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"must_include pattern {pattern!r} is not a regular expression: {err}") from None
        return self



class OverlapCheck(ShapLevelBase):
    """Shared top-N SHAP features between this model and another model of the suite."""

    kind: Literal["overlap"] = Field(description="The check kind (the key of the list item in YAML).")
    with_: str = Field(alias="with", description="The other model's name (from `models`).")
    top_n: int = Field(20, ge=1, description="Size of the top sets compared.")
    surrogate_cv_r2: Bound = Field(
        Bound(min=0.7),
        description="Cross-validated R^2 of the weaker of the two models' surrogates; gates the other metrics.",
    )
    shared: Bound | None = Field(None, description="Number of features in both top_n sets.")
    jaccard: Bound | None = Field(None, description="|A & B| / |A | B| of the two top_n sets.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)



class RegressionCheck(ShapLevelBase):
    """Against the stored results of the last release (a baseline file).

    Its SHAP part (``shap_top_shared``) is gated by the surrogate's R^2
    (``surrogate_cv_r2``, only measured when ``shap_top_shared`` is bounded) and
    follows ``if_unexplained``; the Grad-CAM and RMSE parts are always judged.
    """

    kind: Literal["regression"] = Field(description="The check kind (the key of the list item in YAML).")
    baseline: str = Field(
        description="Baseline JSON, relative to the suite file; written by --harness-regen-baselines."
    )
    top_n: int = Field(20, ge=1, description="Size of the top SHAP sets compared.")
    gradcam_rank_correlation: Bound | None = Field(
        None, description="Mean per-structure Spearman correlation of per-atom scores with the baseline's."
    )
    shap_top_shared: Bound | None = Field(None, description="Top-N SHAP features shared with the baseline.")
    energy_rmse_change_meV_per_atom: Bound | None = Field(
        None, description="Energy RMSE minus the baseline's, meV/atom."
    )
    surrogate_cv_r2: Bound = Field(
        Bound(min=0.7), description="Cross-validated R^2 of the surrogate; gates shap_top_shared (only)."
    )

    def bounds(self) -> dict[str, Bound]:
        """The gated metrics; the surrogate's R^2 only when the SHAP part is asked for or it is bounded explicitly."""
        out = super().bounds()
        if self.shap_top_shared is None and "surrogate_cv_r2" not in self.model_fields_set:
            out.pop("surrogate_cv_r2")
        return out



class AtomErrorClassesCheck(ShapLevelBase):
    """'What', per atom: which classes of per-atom features drive the model's per-atom force errors.

    Samples are atoms (seeded, element-stratified, at most `max_atoms`); the
    target is each atom's force-error norm |F_model - F_ref| (eV/A); the
    descriptor is pair shells (`A|B@lo-hiA`, default) or per-atom SOAP;
    cross-validation folds keep each structure's atoms together. SHAP values
    are summed per atom over each class of `group_by` before mean |.|.
    """

    kind: Literal["atom_error_classes"] = Field(description="The check kind (the key of the list item in YAML).")
    descriptor: Literal["pair_shells", "soap"] = Field(
        "pair_shells",
        description="Per-atom descriptor: pair shells (descriptor.pair_shells) or SOAP per atom (descriptor.soap).",
    )
    target: Literal["force_error_norm"] = Field(
        "force_error_norm", description="Per-atom target: |F_model - F_ref| in eV/A."
    )
    max_atoms: int = Field(3000, ge=20, le=500_000, description="Atoms sampled (element-stratified, seeded).")
    estimator: Literal["hist_gradient_boosting", "gradient_boosting"] = Field(
        "hist_gradient_boosting", description="scikit-learn booster of the surrogate (histogram-based: ~15x faster)."
    )
    n_estimators: int = Field(200, ge=1, description="Boosting iterations.")
    learning_rate: float = Field(0.1, gt=0, le=1, description="Boosting learning rate.")
    max_depth: int = Field(6, ge=1, le=32, description="Tree depth.")
    cv_folds: int = Field(5, ge=2, le=20, description="k of the structure-grouped k-fold CV R^2.")
    group_by: Literal["pair", "directed", "centre", "neighbour", "shell", "angular", "radial"] = Field(
        "pair", description="Feature classes whose SHAP values are summed per atom (pair: unordered species pair)."
    )
    pair: list[str] | None = Field(None, description="The species pair of pair_class_share and pair_class_rank.")
    surrogate_cv_r2: Bound = Field(
        Bound(min=0.5), description="Structure-grouped cross-validated R^2 of the surrogate; gates the other metrics."
    )
    pair_class_share: Bound | None = Field(
        None, description="Grouped mean |SHAP| of `pair`'s class over the sum over every class."
    )
    pair_class_rank: Bound | None = Field(None, description="1-based rank of `pair`'s class among the classes.")
    top_class_share: Bound | None = Field(None, description="Grouped share of the top-ranked class.")

    @model_validator(mode="after")
    def _consistent(self) -> AtomErrorClassesCheck:
        if self.pair is not None:
            if len(self.pair) != 2:
                raise ValueError("pair must name two elements, e.g. [A, B]")
            for v in self.pair:
                _element(v)
        if (self.pair_class_share is not None or self.pair_class_rank is not None) and self.pair is None:
            raise ValueError("pair_class_share and pair_class_rank need 'pair' (two elements)")
        if self.pair is not None and self.group_by != "pair":
            raise ValueError(f"'pair' needs group_by: pair (got {self.group_by!r})")
        if self.descriptor == "soap" and self.group_by in ("directed", "centre", "neighbour", "shell"):
            raise ValueError(f"SOAP features have no {self.group_by!r} class: use pair, angular or radial")
        if self.descriptor == "pair_shells" and self.group_by in ("angular", "radial"):
            raise ValueError(
                f"pair-shell features have no {self.group_by!r} class: use pair, directed, centre, neighbour or shell"
            )
        return self



class PairForceBiasCheck(CheckBase):
    """'What', by pair and distance: is the model's force between A-B pairs too attractive or too repulsive?

    For every A-B pair (i, j) within `r_max_A`: c_ij = 1/2 (dF_i - dF_j) . r_ij/r,
    dF = F_model - F_ref, which equals dphi'(r) for an error that is a pair term
    dphi (harness/explain/pair_forces.py). c > 0: too attractive; c < 0: too repulsive.
    No surrogate: it reads the reference's force labels directly.
    """

    kind: Literal["pair_force_bias"] = Field(description="The check kind (the key of the list item in YAML).")
    pair: list[str] = Field(description="The species pair, e.g. [A, B].")
    r_min_A: float = Field(2.0, ge=0, description="Smallest pair distance counted, Angstrom.")
    r_max_A: float = Field(5.0, gt=0, le=20, description="Largest pair distance counted, Angstrom.")
    shell_width_A: float = Field(0.5, ge=0.05, description="Shell width of the reported profile, Angstrom.")
    min_pairs_per_shell: int = Field(10, ge=1, description="Shells with fewer pairs are not reported or gated.")
    bias_meV_per_A: Bound | None = Field(
        None, description="Mean central force error over every pair in [r_min_A, r_max_A), meV/A (> 0: too attractive)."
    )
    min_shell_bias_meV_per_A: Bound | None = Field(
        None, description="Most negative (most repulsive) shell mean, meV/A."
    )
    max_shell_bias_meV_per_A: Bound | None = Field(
        None, description="Most positive (most attractive) shell mean, meV/A."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PairForceBiasCheck:
        if len(self.pair) != 2:
            raise ValueError("pair must name two elements, e.g. [A, B]")
        for v in self.pair:
            _element(v)
        if self.r_min_A >= self.r_max_A:
            raise ValueError(f"r_min_A ({self.r_min_A}) must be below r_max_A ({self.r_max_A})")
        return self
