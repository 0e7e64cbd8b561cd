"""Per-atom explanations: a surrogate whose samples are atoms.

The structure-level "what" (SOAP averaged over a cell against the cell's energy
error) can only say which composition-like features track the error. Here each
sample is one atom: its per-atom descriptor (pair shells, or per-atom SOAP)
against a per-atom error the reference data really has:

* ``force_error_norm`` (default): |F_model,i - F_ref,i| in eV/A. The norm, not
  a signed projection: the descriptors are rotation-invariant, and so is the
  norm, while a Cartesian component or a projection onto F_ref (undefined
  where F_ref ~ 0, and its sign flips with the environment's orientation) is
  not a function of the invariant environment alone.
* ``energy_error``: e_model,i - e_ref,i (eV, signed) where both sides provide
  per-atom energies (a reference with per-atom energies, e.g. a planted term).

Atoms are subsampled, seeded and stratified by element (each element gets an
equal share of ``max_atoms``, all its atoms when it has fewer; the rest goes to
the others), so a few dopant atoms among 50,000 host atoms are represented and
the cost is bounded. Cross-validation folds are grouped by structure: the atoms
of one structure are never split between training and test folds (neighbouring
atoms share environments and errors; splitting them would inflate R^2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from ase import Atoms

from harness.errors import CheckError, DataError

if TYPE_CHECKING:
    from harness.explain.surrogate import Estimator

_ZERO_SPREAD_eV_PER_A = 1e-9
AtomDescriptor = Literal["pair_shells", "soap"]
AtomTarget = Literal["force_error_norm", "energy_error"]


def force_error_norm(forces_model: np.ndarray, forces_ref: np.ndarray) -> np.ndarray:
    """|F_model - F_ref| per atom (eV/A)."""
    fm = np.asarray(forces_model, dtype=np.float64)
    fr = np.asarray(forces_ref, dtype=np.float64)
    if fm.ndim != 2 or fm.shape[1] != 3 or fm.shape != fr.shape:
        raise DataError(f"force arrays must both be (N, 3); got {fm.shape} and {fr.shape}")
    if not (np.all(np.isfinite(fm)) and np.all(np.isfinite(fr))):
        bad = np.flatnonzero(~np.all(np.isfinite(fm - fr), axis=1))
        raise DataError(f"non-finite forces at atom(s) {bad[:10].tolist()}")
    return np.linalg.norm(fm - fr, axis=1)


@dataclass(frozen=True)
class AtomSample:
    """Which atoms are samples: global indices (sorted), their structure and per-structure indices."""

    atoms: np.ndarray  # (M,) global atom indices into the concatenated per-atom arrays
    structure: np.ndarray  # (M,) structure index of each sampled atom (the CV groups)
    atoms_of: tuple[np.ndarray, ...]  # per structure: local indices of its sampled atoms


def stratified_atoms(symbols: Sequence[str], n_atoms: Sequence[int], max_atoms: int, seed: int) -> AtomSample:
    """Seeded, element-stratified choice of at most ``max_atoms`` atoms."""
    if max_atoms < 1:
        raise CheckError(f"max_atoms={max_atoms} must be >= 1")
    sym = np.asarray(symbols)
    counts = np.asarray(n_atoms, dtype=int)
    if counts.sum() != len(sym):
        raise DataError(f"{len(sym)} atom symbols for structures of {int(counts.sum())} atoms")
    rng = np.random.default_rng(seed)
    elements = sorted(set(sym.tolist()), key=lambda e: (int(np.sum(sym == e)), e))  # rarest first
    chosen: list[np.ndarray] = []
    left = min(max_atoms, len(sym))
    for k, element in enumerate(elements):
        pool = np.flatnonzero(sym == element)
        take = min(len(pool), left // (len(elements) - k))
        chosen.append(rng.choice(pool, size=take, replace=False) if take < len(pool) else pool)
        left -= take
    atoms = np.sort(np.concatenate(chosen))
    starts = np.concatenate([[0], np.cumsum(counts)])
    structure = np.searchsorted(starts, atoms, side="right") - 1
    atoms_of = tuple(atoms[structure == s] - starts[s] for s in range(len(counts)))
    return AtomSample(atoms=atoms, structure=structure, atoms_of=atoms_of)


def soap_atom_features(structures: Sequence[Atoms], settings, atoms_of: Sequence[np.ndarray]) -> np.ndarray:
    """Per-atom SOAP (dscribe, ``average="off"``) of the selected atoms, concatenated in structure order."""
    from harness.explain.descriptors import _wrapped, make_soap, species_of

    soap = make_soap(settings, average="off")
    parts = []
    for s, atoms in enumerate(structures):
        centres = [int(i) for i in atoms_of[s]]
        if not centres:
            continue
        extra = sorted(set(atoms.get_chemical_symbols()) - set(species_of(settings)))
        if extra:
            raise DataError(f"structure {s} contains element(s) {', '.join(extra)} not in the SOAP species")
        prepared = _wrapped(atoms) if settings.periodic else atoms
        parts.append(np.asarray(soap.create(prepared, centers=centres), dtype=np.float64).reshape(len(centres), -1))
    return np.concatenate(parts, axis=0)


@dataclass(frozen=True)
class AtomExplanation:
    """The per-atom 'what' level of one model."""

    cv_r2: float
    cv_r2_folds: np.ndarray
    feature_names: tuple[str, ...]
    importance: np.ndarray  # mean |SHAP| per feature
    ranking: tuple[str, ...]
    shap_values: np.ndarray  # (M, F)
    target: np.ndarray  # (M,) the per-atom target of the sampled atoms
    sample: AtomSample

    def top(self, n: int) -> list[str]:
        return list(self.ranking[:n])


def explain_atoms(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    sample: AtomSample,
    surrogate_settings,  # harness.suite.schema.Surrogate
    *,
    seed: int = 0,
    estimator: Estimator | None = None,
    n_jobs: int | None = None,
) -> AtomExplanation:
    """Fit the surrogate on sampled atoms (folds grouped by structure) and explain it by TreeSHAP."""
    from harness.explain.surrogate import ErrorSurrogate, rank_features

    if x.shape[0] != len(sample.atoms) or y.shape != (len(sample.atoms),):
        raise CheckError(f"{x.shape[0]} descriptor rows and {y.shape} targets for {len(sample.atoms)} sampled atoms")
    fitted = ErrorSurrogate(surrogate_settings, seed=seed, estimator=estimator, n_jobs=n_jobs)
    fitted.fit(x, y, list(names), groups=sample.structure)
    return AtomExplanation(
        cv_r2=float(fitted.cv_r2_),
        cv_r2_folds=np.asarray(fitted.cv_r2_folds_),
        feature_names=tuple(names),
        importance=np.asarray(fitted.importance_),
        ranking=tuple(rank_features(fitted.importance_, list(names))),
        shap_values=np.asarray(fitted.shap_values_),
        target=np.asarray(y, dtype=np.float64),
        sample=sample,
    )


def pair_shell_settings_of(run):  # -> harness.suite.schema.PairShells
    """The suite's pair-shell settings, species from the reference data when omitted."""
    spec = run.suite.descriptor.pair_shells
    if spec.species is not None:
        return spec
    return spec.model_copy(update={"species": list(run.reference.elements)})


def soap_settings_of(run):  # -> schema.Soap
    """The run's SOAP settings (species resolved); the per-atom features use them with ``average="off"``."""
    return run.soap_spec


def run_settings(run, check) -> dict:
    """Everything a per-atom explanation depends on besides the model's outputs (a cache key part)."""

    if check.descriptor == "pair_shells":
        descriptor = pair_shell_settings_of(run).model_dump()
    else:
        descriptor = {**soap_settings_of(run).model_dump(), "average": "off"}
    return {
        "descriptor": check.descriptor,
        "descriptor_settings": descriptor,
        "target": check.target,
        "max_atoms": check.max_atoms,
        "surrogate": {
            k: getattr(check, k) for k in ("estimator", "n_estimators", "learning_rate", "max_depth", "cv_folds")
        },
        "seed": run.suite.settings.seed,
    }


def explain_run_atoms(run, name: str, check) -> AtomExplanation:
    """The per-atom explanation of model ``name`` in a suite run, as a check asks for it (cached on disk)."""
    from harness.cache import content_key
    from harness.suite.schema import Surrogate

    ref = run.reference
    settings = run_settings(run, check)
    sample = stratified_atoms(ref.symbols, ref.n_atoms, check.max_atoms, run.suite.settings.seed)
    if check.descriptor == "pair_shells":
        from harness.explain.pair_shells import pair_shell_feature_names

        names = pair_shell_feature_names(pair_shell_settings_of(run))
    else:
        from harness.explain.descriptors import soap_feature_names

        names = soap_feature_names(soap_settings_of(run))

    def compute() -> dict[str, np.ndarray]:
        structures = list(ref.structures)
        if check.descriptor == "pair_shells":
            from harness.explain.pair_shells import pair_shell_features

            x = pair_shell_features(structures, pair_shell_settings_of(run), sample.atoms_of)
        else:
            x = soap_atom_features(structures, soap_settings_of(run), sample.atoms_of)
        y = force_error_norm(run.outputs(name).forces_eV_per_A, ref.forces_eV_per_A)[sample.atoms]
        if np.ptp(y) <= _ZERO_SPREAD_eV_PER_A:
            raise CheckError(
                f"the per-atom force error is the same on every sampled atom ({float(y[0]):.3g} eV/A): "
                "there is nothing for a surrogate to explain"
            )
        surrogate = Surrogate(**settings["surrogate"])  # the check's booster and trees
        fitted = explain_atoms(x, y, names, sample, surrogate, seed=run.suite.settings.seed)
        return {
            "cv_r2": np.asarray(fitted.cv_r2),
            "cv_r2_folds": fitted.cv_r2_folds,
            "importance": fitted.importance,
            "shap_values": fitted.shap_values,
            "target": fitted.target,
        }

    key = content_key("atom-explanation", run.evaluation_key(name), ref.identity, settings)
    arrays = run.cache.get_or_compute("atom_explanation", key, compute)
    from harness.explain.surrogate import rank_features

    return AtomExplanation(
        cv_r2=float(arrays["cv_r2"]),
        cv_r2_folds=arrays["cv_r2_folds"],
        feature_names=tuple(names),
        importance=arrays["importance"],
        ranking=tuple(rank_features(arrays["importance"], list(names))),
        shap_values=arrays["shap_values"],
        target=arrays["target"],
        sample=sample,
    )
