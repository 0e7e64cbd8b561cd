"""Baselines: the stored results of the last release, for regression checks.

A baseline is a JSON file written only on request (``--harness-regen-baselines``),
holding the released model's per-atom Grad-CAM scores, SHAP ranking and RMSE on
the suite's reference structures, with the hashes they depend on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import __version__
from harness.errors import CheckError
from harness.files import atomic_write_text

if TYPE_CHECKING:
    from harness.gate.session import SuiteRun

BASELINE_FORMAT = "mlff-harness-baseline/1"
RANKING_LENGTH = 50


@dataclass(frozen=True)
class Baseline:
    model_sha256: str
    reference_sha256: str
    scores: np.ndarray
    shap_ranking: tuple[str, ...]
    energy_rmse_meV_per_atom: float
    # what the SHAP ranking was computed with (None in baselines written before they were recorded)
    surrogate: dict[str, Any] | None = None
    descriptor: dict[str, Any] | None = None

    def top(self, n: int) -> list[str]:
        if n > len(self.shap_ranking):
            raise CheckError(f"the baseline stores the top {len(self.shap_ranking)} SHAP features, not {n}")
        return list(self.shap_ranking[:n])


def baseline_document(run: SuiteRun, model: str) -> dict[str, Any]:
    """What a baseline stores for one model of a run."""
    scores = run.scores(model)
    return {
        "format": BASELINE_FORMAT,
        "harness_version": __version__,
        "suite": run.suite.suite,
        "model": model,
        "model_sha256": run.identity(model),
        "reference_sha256": run.reference.sha256,
        "n_atoms": [int(n) for n in run.reference.n_atoms],
        "attribution": run.suite.attribution.model_dump(),
        "energy_rmse_meV_per_atom": run.accuracy(model)["energy_rmse_meV_per_atom"],
        **_shap_settings(run),
        "shap_cv_r2": run.explanation(model).cv_r2,
        "shap_ranking": run.explanation(model).top(RANKING_LENGTH),
        "gradcam_scores": [float(f"{v:.6g}") for v in scores],
    }


def _shap_settings(run: SuiteRun) -> dict[str, dict[str, Any]]:
    """What a SHAP ranking depends on besides the model and the structures."""
    return {
        "surrogate": {**run.suite.surrogate.model_dump(), "seed": run.suite.settings.seed},
        "descriptor": {"soap": run.soap_spec.model_dump()},
    }


def write_baseline(path: Path, run: SuiteRun, model: str) -> None:
    """Write a baseline atomically."""
    atomic_write_text(path, json.dumps(baseline_document(run, model), indent=1) + "\n")


def load_baseline(path: Path, run: SuiteRun, model: str) -> Baseline:
    """Read a baseline and check it was made on the same structures and settings."""
    regen = "write one with --harness-regen-baselines"
    if not path.is_file():
        raise CheckError(f"baseline {path} does not exist; {regen}")
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckError(f"baseline {path} is not valid JSON ({err}); {regen}") from None
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise CheckError(f"{path} is not a {BASELINE_FORMAT} file; {regen}")
    if doc["reference_sha256"] != run.reference.sha256 or doc["n_atoms"] != [int(n) for n in run.reference.n_atoms]:
        raise CheckError(
            f"baseline {path} was made on other reference structures "
            f"(sha256 {doc['reference_sha256'][:12]}..., now {run.reference.sha256[:12]}...); {regen}"
        )
    if doc["attribution"] != run.suite.attribution.model_dump():
        raise CheckError(
            f"baseline {path} was made with attribution settings {doc['attribution']}, "
            f"the suite now uses {run.suite.attribution.model_dump()}; {regen}"
        )
    return Baseline(
        model_sha256=doc["model_sha256"],
        reference_sha256=doc["reference_sha256"],
        scores=np.asarray(doc["gradcam_scores"], dtype=float),
        shap_ranking=tuple(doc["shap_ranking"]),
        energy_rmse_meV_per_atom=float(doc["energy_rmse_meV_per_atom"]),
        surrogate=doc.get("surrogate"),
        descriptor=doc.get("descriptor"),
    )


def check_shap_settings(baseline: Baseline, path: Path, run: SuiteRun) -> None:
    """Refuse to compare SHAP rankings made with another surrogate or descriptor.

    A ranking of features explaining |error| says nothing about one explaining
    the signed error, nor about another SOAP basis: comparing their top-N sets
    would measure the settings, not the model.
    """
    regen = "write one with --harness-regen-baselines"
    now = _shap_settings(run)
    then = {"surrogate": baseline.surrogate, "descriptor": baseline.descriptor}
    for key in ("surrogate", "descriptor"):
        if then[key] is None:
            raise CheckError(
                f"baseline {path} does not record the {key} settings of its SHAP ranking, so "
                f"shap_top_shared cannot be compared; {regen}"
            )
        if then[key] != now[key]:
            raise CheckError(
                f"baseline {path} ranked SHAP features with {key} settings {then[key]}, "
                f"the suite now uses {now[key]}; {regen}"
            )
