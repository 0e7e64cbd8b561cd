"""The suite schema: strict pydantic models, units in field names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from harness.suite.bounds import CANDIDATE, MODEL_NAME_RE, Strict, _element, _sha256, _species_list
from harness.suite.check_kinds import (
    AccuracyCheck,
    AtomErrorClassesCheck,
    CheckBase,
    GradcamLocusCheck,
    OverlapCheck,
    PairForceBiasCheck,
    RegressionCheck,
    ShapClassesCheck,
)
from harness.suite.sanity_kinds import (
    AttributionFaithfulnessCheck,
    RandomisationSanityCheck,
    SurrogateFaithfulnessCheck,
)


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

    candidate: ModelSpec = Field(description="The checkpoint the gate decides on; --harness-candidate overrides it.")
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
    select: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(
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
    plus `centre=A` indicators; see harness/explain/pair_shells.py.
    """

    species: list[str] | None = Field(
        None, min_length=1, description="Elements; omitted: the elements of the kept reference structures."
    )
    r_min_A: float = Field(2.0, ge=0, description="Inner edge of the first shell, Angstrom.")
    r_max_A: float = Field(6.0, gt=0, le=20, description="Outer edge of the last shell, Angstrom.")
    shell_width_A: float = Field(
        0.25, ge=0.01, description="Shell width, Angstrom ((r_max_A - r_min_A) a whole multiple)."
    )
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
    estimator: Literal["gradient_boosting", "xgboost", "hist_gradient_boosting"] = Field(
        "gradient_boosting",
        description=(
            "The booster: scikit-learn's GradientBoostingRegressor (the paper's), XGBoost's exact trees of the "
            "same shape (~10x faster; parity in benchmarks/surrogate_parity.py) or scikit-learn's histogram "
            "booster (its own leaf limits; meant for thousands of rows)."
        ),
    )



class Settings(Strict):
    """Run settings; the command line can override device, dtype and batch size."""

    seed: int = Field(0, ge=0, description="Seeds everything random (surrogate, folds).")
    batch_size: int = Field(
        16, ge=1, description="Structures per model evaluation batch (on a CPU also at most 128 atoms: faster there)."
    )
    dtype: Literal["float32", "float64"] = Field("float64", description="Model evaluation precision.")


Check = Annotated[
    (
        AccuracyCheck
        | GradcamLocusCheck
        | ShapClassesCheck
        | OverlapCheck
        | RegressionCheck
        | AttributionFaithfulnessCheck
        | RandomisationSanityCheck
        | SurrogateFaithfulnessCheck
        | AtomErrorClassesCheck
        | PairForceBiasCheck
    ),
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
