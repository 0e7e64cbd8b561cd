"""One run of one suite: reference data, model outputs, SOAP and surrogates, computed once.

Data flow, one direction: suite -> reference structures + models -> model
outputs (energies, forces, per-atom scores; cached on disk) -> descriptors ->
surrogate -> what the checks measure. Everything is lazy: a check asks for
what it needs and shares it with every other check of the run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from harness import __version__
from harness.cache import ArrayCache, content_key
from harness.data.reference import ReferenceSet, load_reference
from harness.errors import DataError, ModelError
from harness.explain.metrics import accuracy_metrics, normalise_by, normalise_per_structure
from harness.files import sha256_file
from harness.models import ModelOutputs, gradcam_variant, load_model
from harness.profile import stage
from harness.suite.bounds import CANDIDATE
from harness.suite.loader import LoadedSuite
from harness.suite.schema import Soap

if TYPE_CHECKING:
    from harness.explain.atom_explain import AtomExplanation
    from harness.models import Model
    from harness.suite.check_kinds import AtomErrorClassesCheck

Device = Literal["cpu", "cuda"]


# Models loaded in this process, by (checkpoint sha256, device, dtype), oldest first.
_LOADED: dict[tuple[str, str, str], Model] = {}
_LOADED_MAX = 4


@dataclass(frozen=True)
class RunOptions:
    """What the command line may override; None keeps the suite's value."""

    candidate: Path | None = None
    candidate_sha256: str | None = None
    allow_unpinned: bool = False
    device: Device = "cpu"
    dtype: Literal["float32", "float64"] | None = None
    batch_size: int | None = None
    cache_dir: Path | None = None
    regen_baselines: bool = False
    progress: bool = field(default_factory=lambda: sys.stderr.isatty())


@dataclass(frozen=True)
class ModelRef:
    """Where a model of the suite comes from."""

    name: str
    path: Path
    sha256: str | None


@dataclass(frozen=True)
class Explanation:
    """The 'what' level for one model: surrogate fit quality and SHAP ranking."""

    cv_r2: float
    cv_r2_folds: np.ndarray
    feature_names: tuple[str, ...]
    importance: np.ndarray  # mean |SHAP| per feature, aligned with feature_names
    ranking: tuple[str, ...]  # feature names by importance, descending
    shap_values: np.ndarray  # (S, F) SHAP values per structure (for bootstrap stability)

    def top(self, n: int) -> list[str]:
        return list(self.ranking[:n])

    def importance_of(self, names: list[str]) -> list[float]:
        index = {name: i for i, name in enumerate(self.feature_names)}
        return [float(self.importance[index[name]]) for name in names]


def _soap_jobs(n_structures: int) -> int:
    """Worker processes for SOAP: one, unless there are 4+ cores and at least 2,000 structures.

    Measured (benchmarks/README.md, "GPU"): for the 300 shipped structures on the
    16-core H200 host, 1 worker took 1.84 s, 4 took 2.63 s and 8 took 3.47 s; on
    2 cores 2 workers took 2.5x longer than 1. Process start-up and pickling
    dominate below a few thousand structures; above 2,000 one worker per 500
    structures (not measured at that size).
    """
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 4 or n_structures < 2000:
        return 1
    return max(1, min(cores, n_structures // 500))


class SuiteRun:
    """Lazily evaluates what the checks of one suite need."""

    def __init__(self, loaded: LoadedSuite, options: RunOptions | None = None) -> None:
        self.loaded = loaded
        self.suite = loaded.suite
        self.options = options or RunOptions()
        self.cache = ArrayCache(self.options.cache_dir)
        self._outputs: dict[str, ModelOutputs] = {}
        self._explanations: dict[str, Explanation] = {}
        self._atom_explanations: dict[tuple[str, str], AtomExplanation] = {}
        self._identities: dict[str, str] = {}
        self._models: dict[str, Model] = {}

    # --- settings -------------------------------------------------------------------------------

    @property
    def dtype(self) -> str:
        return self.options.dtype or self.suite.settings.dtype

    @property
    def batch_size(self) -> int:
        return self.options.batch_size or self.suite.settings.batch_size

    def model_ref(self, name: str) -> ModelRef:
        """The checkpoint behind a model name, with --candidate applied."""
        models = self.suite.models
        if name == CANDIDATE:
            if self.options.candidate is not None:
                return ModelRef(name, Path(self.options.candidate).resolve(), self.options.candidate_sha256)
            spec = models.candidate
        elif name in models.compare_with:
            spec = models.compare_with[name]
        else:
            raise ModelError(f"the suite has no model named {name!r}; known: {models.names()}")
        return ModelRef(name, self.loaded.resolve(spec.checkpoint), spec.sha256)

    # --- reference data -------------------------------------------------------------------------

    @cached_property
    def reference(self) -> ReferenceSet:
        ref = self.suite.reference
        return load_reference(
            self.loaded.resolve(ref.structures),
            energy_key=ref.energy_key,
            forces_key=ref.forces_key,
            sha256=ref.sha256,
            select=dict(ref.select),
            max_structures=ref.max_structures,
            cache=self.cache,
        )

    # --- models ---------------------------------------------------------------------------------

    def identity(self, name: str) -> str:
        """sha256 of the model's checkpoint file (hashed once per run), checked against its pin.

        The pin is checked here and not only where the checkpoint is unpickled:
        outputs found in the cache (keyed by this hash) never unpickle it.
        """
        if name not in self._identities:
            ref = self.model_ref(name)
            if not ref.path.is_file():
                raise ModelError(f"checkpoint of model {name!r} not found: {ref.path}")
            actual = sha256_file(ref.path)
            if ref.sha256 is not None and ref.sha256.strip().lower() != actual:
                raise ModelError(
                    f"checkpoint {ref.path} of model {name!r}: sha256 mismatch, expected "
                    f"{ref.sha256.strip().lower()} but the file has {actual} (fix: restore the pinned file, "
                    "or update the pin if the new file is trusted)"
                )
            self._identities[name] = actual
        return self._identities[name]

    def _evaluation_key(self, name: str) -> str:
        return content_key(
            "outputs",
            self.identity(name),
            self.reference.identity,
            self.suite.attribution.layer,
            self.dtype,
            self.options.device,
        )

    def outputs(self, name: str) -> ModelOutputs:
        """Energies, forces and raw Grad-CAM of a model on the reference structures."""
        if name not in self._outputs:
            arrays = self.cache.get_or_compute("outputs", self._evaluation_key(name), lambda: self._evaluate(name))
            self._outputs[name] = ModelOutputs(
                energies_eV=arrays["energies_eV"],
                forces_eV_per_A=arrays["forces_eV_per_A"],
                gradcam_raw=arrays["gradcam_raw"],
                n_atoms=arrays["n_atoms"].astype(int),
            )
        return self._outputs[name]

    def evaluation_key(self, name: str) -> str:
        """Cache key of a model's outputs: checkpoint, reference data, layer, dtype and device."""
        return self._evaluation_key(name)

    def model(self, name: str) -> Model:
        """The loaded model (pinned, hashed before unpickling); loaded once per process.

        The suite files of one pytest session (the gate and the sanity suite) share a
        checkpoint they both name: the same file bytes (sha256, checked against this
        suite's pin first), device and precision give the same model, so it is loaded
        once (:data:`_LOADED`, the last few kept). A file with no pin is shared only
        where unpinned loading is allowed, so the refusal still happens where it must.
        """
        if name not in self._models:
            ref = self.model_ref(name)
            key = (self.identity(name), self.options.device, self.dtype)
            model = _LOADED.get(key) if ref.sha256 is not None or self.options.allow_unpinned else None
            if model is None:
                with stage("load"):
                    model = load_model(
                        ref.path,
                        device=self.options.device,
                        dtype=self.dtype,
                        name=name,
                        expected_sha256=ref.sha256,
                        allow_unpinned=self.options.allow_unpinned,
                    )
                if model.identity != self.identity(name):
                    raise ModelError(f"checkpoint {ref.path} changed while the suite was running")
                _LOADED[key] = model
                while len(_LOADED) > _LOADED_MAX:  # a sweep gates many checkpoints in one worker
                    _LOADED.pop(next(iter(_LOADED)))
            self._models[name] = model
        return self._models[name]

    def _evaluate(self, name: str) -> dict[str, np.ndarray]:
        model = self.model(name)
        out = model.evaluate(
            list(self.reference.structures),
            batch_size=self.batch_size,
            layer=self.suite.attribution.layer,
            progress=self.options.progress,
        )
        if not np.array_equal(out.n_atoms, self.reference.n_atoms):
            raise ModelError(f"model {name!r} returned outputs for the wrong number of atoms")
        return {
            "energies_eV": out.energies_eV,
            "forces_eV_per_A": out.forces_eV_per_A,
            "gradcam_raw": out.gradcam_raw,
            "n_atoms": out.n_atoms,
        }

    def evaluated_models(self) -> list[str]:
        """The models of the suite whose outputs this run has computed or loaded, in suite order."""
        return [n for n in self.suite.models.names() if n in self._outputs]

    def accuracy(self, name: str) -> dict[str, float]:
        out, ref = self.outputs(name), self.reference
        return accuracy_metrics(
            out.energies_eV, ref.energies_eV, out.forces_eV_per_A, ref.forces_eV_per_A, ref.n_atoms
        )

    # --- the 'where' level ----------------------------------------------------------------------

    def scores(self, name: str) -> np.ndarray:
        """Per-atom Grad-CAM scores with the suite's variant and normalisation."""
        attribution = self.suite.attribution
        raw = gradcam_variant(self.outputs(name).gradcam_raw, attribution.variant)
        if attribution.normalisation == "per_structure":
            return normalise_per_structure(raw, self.reference.offsets)
        if attribution.normalisation == "across_models":
            return normalise_by(raw, self.score_scale)
        return raw

    @cached_property
    def score_scale(self) -> float:
        """Largest |score| over every model of the suite (for across_models normalisation)."""
        variant = self.suite.attribution.variant
        return max(
            float(np.max(np.abs(gradcam_variant(self.outputs(n).gradcam_raw, variant))))
            for n in self.suite.models.names()
        )

    # --- the 'what' level -----------------------------------------------------------------------

    @cached_property
    def soap_spec(self) -> Soap:
        """The suite's SOAP settings with the species filled in (from the reference data when omitted)."""
        soap = self.suite.descriptor.soap
        if soap.species is None:
            return Soap.model_validate({**soap.model_dump(), "species": self.reference.elements})
        return soap

    @cached_property
    def soap(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """SOAP vectors of the reference structures (cached) and their feature names."""
        from harness.explain.descriptors import soap_feature_names, soap_features

        soap = settings = self.soap_spec
        key = content_key("soap", self.reference.identity, soap.model_dump())
        structures = list(self.reference.structures)
        with stage("SOAP"):
            arrays = self.cache.get_or_compute(
                "soap", key, lambda: {"X": soap_features(structures, settings, n_jobs=_soap_jobs(len(structures)))}
            )
        return arrays["X"], tuple(soap_feature_names(settings))

    def explanation(self, name: str) -> Explanation:
        """Surrogate of the model's energy error from SOAP, its CV R^2 and SHAP ranking."""
        if name not in self._explanations:
            surrogate = self.suite.surrogate
            key = content_key(
                "explanation",
                self._evaluation_key(name),
                self.soap_spec.model_dump(),
                surrogate.model_dump(),
                self.suite.settings.seed,
                "with-shap-values",
            )
            arrays = self.cache.get_or_compute("explanation", key, lambda: self._explain(name))
            names = self.soap[1]
            importance = arrays["importance"]
            order = sorted(range(len(names)), key=lambda i: (-importance[i], names[i]))
            self._explanations[name] = Explanation(
                cv_r2=float(arrays["cv_r2"]),
                cv_r2_folds=arrays["cv_r2_folds"],
                feature_names=names,
                importance=importance,
                ranking=tuple(names[i] for i in order),
                shap_values=arrays["shap_values"],
            )
        return self._explanations[name]

    def error_target(self, name: str) -> np.ndarray:
        from harness.explain.surrogate import error_target

        surrogate = self.suite.surrogate
        return error_target(
            self.outputs(name).energies_eV,
            self.reference.energies_eV,
            self.reference.n_atoms,
            kind=surrogate.target,
            per=surrogate.per,
        )

    def _explain(self, name: str) -> dict[str, np.ndarray]:
        from harness.explain.surrogate import ErrorSurrogate

        surrogate = self.suite.surrogate
        X, names = self.soap
        y = self.error_target(name)
        if len(y) < 2 * surrogate.cv_folds:
            raise DataError(
                f"the surrogate needs at least {2 * surrogate.cv_folds} structures for "
                f"{surrogate.cv_folds}-fold cross-validation; the reference set has {len(y)}"
            )
        fitted = ErrorSurrogate(surrogate, seed=self.suite.settings.seed).fit(X, y, list(names))
        return {
            "cv_r2": np.asarray(fitted.cv_r2_),
            "cv_r2_folds": np.asarray(fitted.cv_r2_folds_),
            "importance": np.asarray(fitted.importance_),
            "shap_values": np.asarray(fitted.shap_values_),
        }

    def atom_explanation(self, name: str, check: AtomErrorClassesCheck) -> AtomExplanation:
        """Per-atom surrogate of the model's force errors with the check's settings (harness.explain.atom_explain)."""
        from harness.cache import content_key
        from harness.explain.atom_explain import explain_run_atoms, run_settings

        memo = (name, content_key("atom-settings", run_settings(self, check)))
        if memo not in self._atom_explanations:
            self._atom_explanations[memo] = explain_run_atoms(self, name, check)
        return self._atom_explanations[memo]

    # --- provenance -----------------------------------------------------------------------------

    def provenance(self) -> dict[str, object]:
        """What the results depend on: versions, hashes and settings."""
        return {
            "harness_version": __version__,
            "suite_file": str(self.loaded.path),
            "reference": {
                "path": str(self.reference.path),
                "sha256": self.reference.sha256,
                "n_structures": len(self.reference),
                "n_atoms": int(np.sum(self.reference.n_atoms)),
            },
            "models": {
                name: {"checkpoint": str(self.model_ref(name).path), "sha256": self._identities.get(name)}
                for name in self.suite.models.names()
            },
            "settings": {
                "device": self.options.device,
                "dtype": self.dtype,
                "batch_size": self.batch_size,
                "attribution": self.suite.attribution.model_dump(),
                "surrogate": self.suite.surrogate.model_dump(),
                "soap": self.soap_spec.model_dump(),
                "seed": self.suite.settings.seed,
            },
        }
