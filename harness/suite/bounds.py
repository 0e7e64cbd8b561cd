"""Strict models, the shared validators, and the bounds every gated value is compared with."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
        return not (self.max is not None and value > self.max)

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
