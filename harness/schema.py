"""The suite schema: strict pydantic models, units in field names.

A suite file is YAML; :mod:`harness.loader` reads it with line numbers and
validates it against :class:`Suite`. ``mlff-harness schema`` exports the JSON
Schema of these models.

Every check kind is a model whose :class:`Bound` fields name the metrics it
gates; :mod:`harness.checks` computes a value for each such metric.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

ELEMENT_RE = re.compile(r"^[A-Z][a-z]?$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MODEL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
CANDIDATE = "candidate"


class Strict(BaseModel):
    """Base: unknown keys are errors, values are frozen after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _element(value: str) -> str:
    from ase.data import chemical_symbols

    if not isinstance(value, str) or not ELEMENT_RE.match(value) or value not in chemical_symbols:
        raise ValueError(f"{value!r} is not a chemical element symbol (e.g. 'Fe', 'O')")
    return value


def _species_list(value: list[str] | None) -> list[str] | None:
    """None, or distinct chemical element symbols."""
    if value is None:
        return value
    for v in value:
        _element(v)
    if len(set(value)) != len(value):
        raise ValueError(f"species {value} lists an element twice")
    return value


def _sha256(value: str | None) -> str | None:
    if value is not None and not SHA256_RE.match(value):
        raise ValueError("sha256 must be 64 lowercase hexadecimal characters")
    return value


class Bound(Strict):
    """A threshold on one measured value: the check passes when min <= value <= max."""

    min: float | None = Field(None, description="Smallest passing value (inclusive).")
    max: float | None = Field(None, description="Largest passing value (inclusive).")
    spread: float | None = Field(
        None,
        ge=0,
        description="Measured spread across hardware and seeds: max - min of the gated value over devices, "
        "precisions and seeds (`mlff-harness spread`). The report flags a value closer than 3 spreads to the "
        "threshold as fragile.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a bound needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max}): no value can pass")
        return self

    def admits(self, value: float) -> bool:
        """Whether a measured value passes (NaN never passes)."""
        if value != value:  # NaN
            return False
        if self.min is not None and value < self.min:
            return False
        if self.max is not None and value > self.max:
            return False
        return True

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"[{self.min:g}, {self.max:g}]"
        if self.min is not None:
            return f">= {self.min:g}"
        return f"<= {self.max:g}"


class IntervalBound(Bound):
    """A threshold on a measured value that comes with a bootstrap confidence interval.

    ``on`` selects what is compared with min/max: the point value, or the low or
    high end of the interval (a gate on ``ci_low`` with a ``min`` asks that the
    value is above the threshold with the interval's confidence).
    """

    on: Literal["point", "ci_low", "ci_high"] = Field(
        "point", description="What the bound gates: the point value, or the interval's low or high end."
    )
    min_resample_share: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Also require the bound to hold in at least this share of the bootstrap resamples "
        "(e.g. 0.9); off by default.",
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml11_on(cls, data: Any) -> Any:
        """A YAML 1.1 parser reads the key `on` as True; take it back (the suite loader reads YAML 1.2 booleans)."""
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    def describe(self) -> str:
        text = super().describe()
        if self.on != "point":
            text += f" on {self.on}"
        if self.min_resample_share is not None:
            text += f" in >= {self.min_resample_share:g} of resamples"
        return text


class Bootstrap(Strict):
    """Bootstrap over structures: resample the structures with replacement and recompute the value."""

    n_resamples: int = Field(1000, ge=10, le=100_000, description="Number of bootstrap resamples.")
    level: float = Field(0.95, gt=0, lt=1, description="Confidence level of the percentile interval.")
    seed: int | None = Field(None, ge=0, description="Seed of the resampling; default: settings.seed.")


class ModelSpec(Strict):
    """A MACE checkpoint, pinned by its sha256."""

    checkpoint: str = Field(description="Path to the checkpoint, relative to the suite file.")
    sha256: str | None = Field(
        None,
        description="sha256 of the checkpoint file; checked before the file is unpickled.",
    )
    description: str | None = Field(None, description="Free text shown in reports.")

    _hex = field_validator("sha256")(classmethod(lambda cls, value: _sha256(value)))


class Models(Strict):
    """The candidate under test and the models it is compared with."""

    candidate: ModelSpec = Field(description="The checkpoint the gate decides on; --candidate overrides it.")
    compare_with: dict[str, ModelSpec] = Field(
        default_factory=dict,
        description="Other models by name, for cross-model checks and analysis suites.",
    )

    @field_validator("compare_with")
    @classmethod
    def _names(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        for name in value:
            if name == CANDIDATE:
                raise ValueError("'candidate' is reserved for the model under test; choose another name")
            if not MODEL_NAME_RE.match(name):
                raise ValueError(f"model name {name!r} must start with a letter and use letters, digits, '_', '-', '.'")
        return value

    def names(self) -> list[str]:
        return [CANDIDATE, *self.compare_with]


class Reference(Strict):
    """Reference structures with energy and force labels (extxyz, plain or gzip)."""

    structures: str = Field(description="extxyz file (.extxyz, .xyz, optionally .gz), relative to the suite file.")
    sha256: str | None = Field(None, description="sha256 of the file; a mismatch is an error.")
    energy_key: str = Field("REF_energy", description="atoms.info key of the total energy, in eV.")
    forces_key: str = Field("REF_forces", description="atoms.arrays key of the forces, in eV/A.")
    select: dict[str, Union[str, int, float, bool, list[Union[str, int, float, bool]]]] = Field(
        default_factory=dict,
        description="Keep only frames whose atoms.info[key] equals the value (or is in the list).",
    )
    max_structures: int | None = Field(
        None, ge=1, description="Use at most this many frames (the first ones after selection)."
    )

    _hex = field_validator("sha256")(classmethod(lambda cls, value: _sha256(value)))


class Soap(Strict):
    """dscribe SOAP settings; the defaults are the paper's, the species those of the data unless named."""

    species: list[str] | None = Field(
        None,
        min_length=1,
        description="Elements, any order; omitted: the elements of the kept reference structures, read at run time.",
    )
    r_cut_A: float = Field(5.0, gt=0, le=20, description="Cutoff radius in Angstrom.")
    n_max: int = Field(4, ge=1, le=9, description="Number of radial basis functions.")
    l_max: int = Field(4, ge=0, le=9, description="Maximum angular channel.")
    sigma_A: float = Field(1.0, gt=0, description="Gaussian width in Angstrom.")
    average: Literal["inner", "outer"] = Field("inner", description="How atomic environments are averaged.")
    periodic: bool = Field(True, description="Use periodic boundary conditions.")

    @field_validator("species")
    @classmethod
    def _species(cls, value: list[str] | None) -> list[str] | None:
        return _species_list(value)


class PairShells(Strict):
    """Pair-shell descriptor (per atom): neighbour counts per (centre species, neighbour species, distance shell).

    Features are named `A|B@lo-hiA` (B neighbours of an A atom between lo and hi angstrom)
    plus `centre=A` indicators; see harness/pair_shells.py.
    """

    species: list[str] | None = Field(
        None, min_length=1, description="Elements; omitted: the elements of the kept reference structures."
    )
    r_min_A: float = Field(2.0, ge=0, description="Inner edge of the first shell, Angstrom.")
    r_max_A: float = Field(6.0, gt=0, le=20, description="Outer edge of the last shell, Angstrom.")
    shell_width_A: float = Field(0.25, ge=0.01, description="Shell width, Angstrom ((r_max_A - r_min_A) a whole multiple).")
    smooth_A: float = Field(
        0.05, ge=0, le=1, description="Gaussian smoothing of the shell edges, Angstrom (0: hard counts)."
    )
    centre_indicators: bool = Field(True, description="Add one `centre=A` indicator feature per species.")

    @field_validator("species")
    @classmethod
    def _species(cls, value: list[str] | None) -> list[str] | None:
        return _species_list(value)

    @model_validator(mode="after")
    def _shells(self) -> PairShells:
        if self.r_min_A >= self.r_max_A:
            raise ValueError(f"r_min_A ({self.r_min_A}) must be below r_max_A ({self.r_max_A})")
        count = (self.r_max_A - self.r_min_A) / self.shell_width_A
        if abs(count - round(count)) > 1e-6:
            raise ValueError(
                f"(r_max_A - r_min_A) / shell_width_A = {count:g} is not a whole number of shells "
                "(choose r_max_A = r_min_A + k * shell_width_A)"
            )
        return self


class Descriptor(Strict):
    """The descriptor of the 'what' level."""

    soap: Soap = Field(default_factory=Soap, description="SOAP settings (dscribe).")
    pair_shells: PairShells = Field(
        default_factory=PairShells, description="Pair-shell settings, for per-atom checks (atom_error_classes)."
    )


class Attribution(Strict):
    """Grad-CAM settings of the 'where' level."""

    layer: str = Field("products[-1]", description="Module path of the hooked layer in the model.")
    variant: Literal["relu", "signed", "absolute"] = Field(
        "relu", description="relu: the paper's alpha = ReLU(sum_k dE/dA*A); signed; absolute."
    )
    normalisation: Literal["none", "per_structure", "across_models"] = Field(
        "none",
        description=(
            "none: raw scores; per_structure: divide by each structure's max score; "
            "across_models: divide by the max score over every model of the suite."
        ),
    )


class Surrogate(Strict):
    """The gradient-boosting surrogate of the model's error; defaults are the paper's."""

    target: Literal["absolute", "signed"] = Field("absolute", description="|E_model - E_ref| or E_model - E_ref.")
    per: Literal["atom", "structure"] = Field("atom", description="Energy error per atom or per structure (total).")
    n_estimators: int = Field(200, ge=1, description="GradientBoostingRegressor n_estimators.")
    learning_rate: float = Field(0.05, gt=0, le=1, description="GradientBoostingRegressor learning_rate.")
    max_depth: int = Field(8, ge=1, le=32, description="GradientBoostingRegressor max_depth.")
    cv_folds: int = Field(5, ge=2, le=20, description="k of the k-fold cross-validated R^2.")


class Settings(Strict):
    """Run settings; the command line can override device, dtype and batch size."""

    seed: int = Field(0, ge=0, description="Seeds everything random (surrogate, folds).")
    batch_size: int = Field(
        16, ge=1, description="Structures per model evaluation batch (on a CPU also at most 128 atoms: faster there)."
    )
    dtype: Literal["float32", "float64"] = Field("float64", description="Model evaluation precision.")


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
        default_factory=dict, description="Force-error bounds per element symbol, e.g. {Fe: {force_rmse_meV_per_A: {max: 80}}}."
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
                raise ValueError(f"per_element.{element} has no threshold: give force_rmse_meV_per_A or force_mae_meV_per_A")
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
        for label, body in self.per_group.items():
            if not any(isinstance(v, Bound) for _, v in body):
                raise ValueError(f"per_group.{label} has no threshold: bound one of its metrics")
        return self

    def bounds(self) -> dict[str, Bound]:
        """Top-level metrics, then `per_element.<El>.<metric>` and `per_group.<label>.<metric>`."""
        out = super().bounds()
        for element, body in self.per_element.items():
            out.update({f"per_element.{element}.{k}": v for k, v in body if isinstance(v, Bound)})
        for label, body in self.per_group.items():
            out.update({f"per_group.{label}.{k}": v for k, v in body if isinstance(v, Bound)})
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
        "pair term, 0.975 for a dopant-blind model), while good models sit at 0.66-0.81 and an excellent model whose remaining error is "
        "noise has none to explain; failing them says nothing about the model, and a skip stays visible in "
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
    involving_share: Bound | None = Field(None, description="Share of the top_n features whose pair involves `involving`.")
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
    baseline: str = Field(description="Baseline JSON, relative to the suite file; written by --harness-regen-baselines.")
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
        "pair_shells", description="Per-atom descriptor: pair shells (descriptor.pair_shells) or SOAP per atom (descriptor.soap)."
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
            raise ValueError(f"pair-shell features have no {self.group_by!r} class: use pair, directed, centre, neighbour or shell")
        return self


class PairForceBiasCheck(CheckBase):
    """'What', by pair and distance: is the model's force between A-B pairs too attractive or too repulsive?

    For every A-B pair (i, j) within `r_max_A`: c_ij = 1/2 (dF_i - dF_j) . r_ij/r,
    dF = F_model - F_ref, which equals dphi'(r) for an error that is a pair term
    dphi (harness/pair_forces.py). c > 0: too attractive; c < 0: too repulsive.
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
        None, description="mean |dE| displacing the top-k atoms / mean |dE| displacing k random atoms (1: no better than chance)."
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
    cascade: bool = Field(True, description="Randomise cumulatively block by block from the readout; false: all layers only.")
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
    seed: int | None = Field(None, ge=0, description="Seed of the split and the random features; default: settings.seed.")
    heldout_r2: Bound = Field(
        Bound(min=0.5), description="Surrogate R^2 on the held-out structures; gates the other metrics."
    )
    top_to_random_r2_drop_ratio: IntervalBound | None = Field(
        None, description="Drop of held-out R^2 removing the top-N SHAP features / mean drop removing N random features."
    )
    top_r2_drop: IntervalBound | None = Field(
        None, description="Drop of held-out R^2 when the top-N SHAP features are replaced by their training means."
    )


Check = Annotated[
    Union[
        AccuracyCheck,
        GradcamLocusCheck,
        ShapClassesCheck,
        OverlapCheck,
        RegressionCheck,
        AttributionFaithfulnessCheck,
        RandomisationSanityCheck,
        SurrogateFaithfulnessCheck,
        AtomErrorClassesCheck,
        PairForceBiasCheck,
    ],
    Field(discriminator="kind"),
]
_CHECK_MODELS: dict[str, type[CheckBase]] = {
    "accuracy": AccuracyCheck,
    "gradcam_locus": GradcamLocusCheck,
    "shap_classes": ShapClassesCheck,
    "overlap": OverlapCheck,
    "regression": RegressionCheck,
    "attribution_faithfulness": AttributionFaithfulnessCheck,
    "randomisation_sanity": RandomisationSanityCheck,
    "surrogate_faithfulness": SurrogateFaithfulnessCheck,
    "atom_error_classes": AtomErrorClassesCheck,
    "pair_force_bias": PairForceBiasCheck,
}
CHECK_KINDS: tuple[str, ...] = tuple(_CHECK_MODELS)


class Suite(Strict):
    """A suite: reference structures, models, descriptor and the checks they must pass."""

    suite: str = Field(description="The suite's name.")
    description: str = Field("", description="What the suite gates, for reports.")
    reference: Reference = Field(description="Reference structures and labels.")
    models: Models = Field(description="The candidate and the models it is compared with.")
    descriptor: Descriptor = Field(default_factory=Descriptor, description="Descriptor settings.")
    attribution: Attribution = Field(default_factory=Attribution, description="Grad-CAM settings.")
    surrogate: Surrogate = Field(default_factory=Surrogate, description="Surrogate settings.")
    settings: Settings = Field(default_factory=Settings, description="Run settings.")
    checks: list[Check] = Field(min_length=1, description="Checks; each list item is {kind: {...}}.")
    focus_elements: list[str] | None = Field(
        None,
        min_length=1,
        description="Elements `mlff-harness measure` reports Grad-CAM locus and SHAP shares for (e.g. the dopant); "
        "omitted: the elements named by the gradcam_locus and shap_classes checks, else every element of the data.",
    )

    @field_validator("focus_elements")
    @classmethod
    def _focus_elements(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for v in value:
                _element(v)
            if len(set(value)) != len(value):
                raise ValueError(f"focus_elements lists an element twice: {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _kinds(cls, data: Any) -> Any:
        """Turn each `{kind: body}` list item into `body + {kind: kind}`."""
        if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
            return data
        checks = []
        for item in data["checks"]:
            if isinstance(item, dict) and len(item) == 1:
                ((kind, body),) = item.items()
                if body is None:
                    body = {}
                if isinstance(body, dict):
                    item = {**body, "kind": kind}
            checks.append(item)
        return {**data, "checks": checks}

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Suite:
        if info.context and info.context.get("defer_references"):
            return self  # the loader reports these with line numbers
        problems = self.reference_problems()
        if problems:
            loc, message = problems[0]
            raise ValueError(f"{'.'.join(str(p) for p in loc)}: {message}")
        return self

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Cross-field problems, each with the YAML path it concerns."""
        known = set(self.models.names())
        problems: list[tuple[tuple[str | int, ...], str]] = []
        seen: set[str] = set()
        for index, check in enumerate(self.checks):
            where: tuple[str | int, ...] = ("checks", index, check.kind)
            for model in check.models:
                if model != "all" and model not in known:
                    problems.append(
                        (where + ("models",), f"unknown model {model!r}; use one of {sorted(known)} or 'all'")
                    )
            if isinstance(check, OverlapCheck) and check.with_ not in known:
                problems.append((where + ("with",), f"unknown model {check.with_!r}; use one of {sorted(known)}"))
            if isinstance(check, ShapClassesCheck):
                for element in _elements_of(check):
                    if self.descriptor.soap.species is not None and element not in self.descriptor.soap.species:
                        problems.append(
                            (
                                where,
                                f"names {element}, which is not in descriptor.soap.species "
                                f"{self.descriptor.soap.species}; add it there",
                            )
                        )
            label = check_label(check)
            if label in seen:
                problems.append((where, f"a second check is named {label!r}; give each check a unique 'name'"))
            seen.add(label)
            if not check.bounds():
                problems.append((where, "no threshold: give at least one metric a {min: ..., max: ...}"))
        return problems

    def models_for(self, check: CheckBase) -> list[str]:
        """The model names a check runs on, with 'all' expanded."""
        if "all" in check.models:
            return self.models.names()
        return list(dict.fromkeys(check.models))


def _elements_of(check: GradcamLocusCheck | ShapClassesCheck) -> list[str]:
    if isinstance(check, GradcamLocusCheck):
        return [check.element]
    found = [check.involving] if check.involving else []
    found += list(check.pair or []) + list(check.top_feature_pair or [])
    return found


def check_label(check: CheckBase) -> str:
    """The name a check is reported under."""
    return check.name or check.kind  # type: ignore[attr-defined]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a suite file (as written in YAML, `{kind: body}` items)."""
    schema = Suite.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    items = []
    for kind, model in _CHECK_MODELS.items():
        body = defs[model.__name__]
        body["properties"].pop("kind", None)
        if "kind" in body.get("required", []):
            body["required"].remove("kind")
        items.append(
            {
                "type": "object",
                "properties": {kind: {"$ref": f"#/$defs/{model.__name__}"}},
                "required": [kind],
                "additionalProperties": False,
            }
        )
    schema["properties"]["checks"]["items"] = {"oneOf": items}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlff-harness suite"
    return schema
