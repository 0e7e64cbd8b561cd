"""Faithfulness of attributions: does what an attribution ranks first matter to the prediction?

Two perturbation tests, family-agnostic (no model package imported here):

- atoms (Grad-CAM): displace the atoms a per-atom score ranks highest and
  measure |dE| of the model, against displacing random atoms; every perturbed
  copy of a structure is one more graph of the same batch
  (:func:`perturbation_energies`);
- features (SHAP): on held-out structures replace the surrogate's top-N
  features by their training means and measure the drop of R^2, against N
  random features (:func:`surrogate_ablation`).

Each result exposes per-structure statistics for :mod:`harness.explain.bootstrap`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from harness.errors import CheckError
from harness.explain.bootstrap import Statistic

EnergyFn = Callable[[Sequence[Atoms]], np.ndarray]
"""Total energies (eV) of the given structures from ONE model call (one batch)."""


# --- atoms: perturbation of the top-ranked atoms ------------------------------------------------


def attribution_order(scores: np.ndarray) -> np.ndarray:
    """Atom indices by score, highest first; ties broken by index (deterministic)."""
    scores = np.asarray(scores, dtype=float)
    return np.lexsort((np.arange(len(scores)), -scores))


@dataclass(frozen=True)
class PerturbationPlan:
    """The perturbed copies of one structure.

    Copy 0 is the structure itself; then, for k = 1..K and each draw d, the
    top-k atoms of ``order`` displaced along ``top_directions[d]``; then, for
    k = 1..K and each draw d, the first k atoms of ``random_orders[d]`` displaced
    along ``random_directions[d]``. Directions are unit vectors, one per atom.
    """

    order: np.ndarray  # (n,) attribution order
    random_orders: np.ndarray  # (draws, n) a random permutation per draw
    top_directions: np.ndarray  # (draws, n, 3)
    random_directions: np.ndarray  # (draws, n, 3)
    k_max: int
    amplitude_A: float

    @property
    def draws(self) -> int:
        return int(self.random_orders.shape[0])

    @property
    def n_copies(self) -> int:
        return 1 + 2 * self.k_max * self.draws

    def displacements(self) -> np.ndarray:
        """(n_copies, n, 3) displacement of every atom in every copy, Angstrom."""
        n = len(self.order)
        out = np.zeros((self.n_copies, n, 3))
        copy = 1
        for orders, directions in ((np.tile(self.order, (self.draws, 1)), self.top_directions),
                                   (self.random_orders, self.random_directions)):
            for k in range(1, self.k_max + 1):
                for d in range(self.draws):
                    atoms = orders[d, :k]
                    out[copy, atoms] = self.amplitude_A * directions[d, atoms]
                    copy += 1
        return out


def plan_perturbations(
    scores: np.ndarray, *, k_max: int, draws: int, amplitude_A: float, rng: np.random.Generator
) -> PerturbationPlan:
    """Seeded directions and random atom sets for one structure's scores."""
    n = len(scores)
    if k_max >= n:
        raise CheckError(f"k_max = {k_max} needs structures of more than {k_max} atoms, got one of {n}")
    if draws < 1 or not amplitude_A > 0:
        raise CheckError(f"need draws >= 1 and amplitude_A > 0, got {draws} and {amplitude_A}")

    def unit(shape: tuple[int, ...]) -> np.ndarray:
        v = rng.normal(size=shape)
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    return PerturbationPlan(
        order=attribution_order(scores),
        random_orders=np.stack([rng.permutation(n) for _ in range(draws)]),
        top_directions=unit((draws, n, 3)),
        random_directions=unit((draws, n, 3)),
        k_max=k_max,
        amplitude_A=amplitude_A,
    )


def perturbed_copies(atoms: Atoms, plan: PerturbationPlan) -> list[Atoms]:
    """The copies of `plan` (copy 0 unperturbed); labels and calculators are not copied."""
    if len(atoms) != len(plan.order):
        raise CheckError(f"a plan for {len(plan.order)} atoms cannot perturb a structure of {len(atoms)}")
    base = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out = []
    for shift in plan.displacements():
        copy = base.copy()
        copy.positions = base.positions + shift
        out.append(copy)
    return out


@dataclass(frozen=True)
class PerturbationEnergies:
    """Energies of every perturbed copy: per structure s, k = 1..K, draw d."""

    reference_eV: np.ndarray  # (S,)
    top_eV: np.ndarray  # (S, K, D) top-k atoms displaced
    random_eV: np.ndarray  # (S, K, D) k random atoms displaced
    top_atoms: np.ndarray  # (S, K) the K highest-ranked atoms of each structure

    def curves(self) -> tuple[np.ndarray, np.ndarray]:
        """(S, K) mean |dE| over draws: attribution order, random order."""
        ref = self.reference_eV[:, None, None]
        return np.abs(self.top_eV - ref).mean(axis=2), np.abs(self.random_eV - ref).mean(axis=2)

    def ratio_statistic(self, k: int) -> Statistic:
        """mean over structures of |dE|(top-k) / the same for random-k."""
        from harness.explain.bootstrap import ratio_of_means

        top, rand = self.curves()
        if not 1 <= k <= top.shape[1]:
            raise CheckError(f"k = {k} outside the measured curve k = 1..{top.shape[1]}")
        return ratio_of_means(top[:, k - 1], rand[:, k - 1])

    def area_statistic(self) -> Statistic:
        """(sum top - sum random) / (sum top + sum random) over k = 1..K and structures, in [-1, 1]."""
        top, rand = self.curves()
        top_sum, rand_sum = top.sum(axis=1), rand.sum(axis=1)

        def statistic(idx: np.ndarray) -> float:
            a, b = float(top_sum[idx].sum()), float(rand_sum[idx].sum())
            return (a - b) / (a + b) if a + b > 0 else float("nan")

        return statistic

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"reference_eV": self.reference_eV, "top_eV": self.top_eV, "random_eV": self.random_eV,
                "top_atoms": self.top_atoms}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> PerturbationEnergies:
        return cls(arrays["reference_eV"], arrays["top_eV"], arrays["random_eV"], arrays["top_atoms"].astype(int))


def perturbation_energies(
    energy_fn: EnergyFn,
    structures: Sequence[Atoms],
    scores: Sequence[np.ndarray],
    *,
    k_max: int = 5,
    draws: int = 4,
    amplitude_A: float = 0.1,
    seed: int = 0,
    structures_per_call: int = 1,
) -> PerturbationEnergies:
    """Energies of the perturbed copies of every structure.

    ``scores[s]`` ranks the atoms of structure s. Structure s draws its
    directions and random atoms from ``default_rng([seed, s])``, so a result
    does not depend on how structures are grouped. Every copy of a structure is
    in the same call of `energy_fn`; one call evaluates the copies of
    `structures_per_call` structures.
    """
    if len(scores) != len(structures):
        raise CheckError(f"{len(scores)} score vectors for {len(structures)} structures")
    if structures_per_call < 1:
        raise CheckError(f"structures_per_call must be >= 1, got {structures_per_call}")
    plans = []
    for s, (atoms, score) in enumerate(zip(structures, scores, strict=True)):
        if len(score) != len(atoms):
            raise CheckError(f"structure {s}: {len(score)} scores for {len(atoms)} atoms")
        plans.append(
            plan_perturbations(score, k_max=k_max, draws=draws, amplitude_A=amplitude_A,
                               rng=np.random.default_rng([seed, s]))
        )
    energies: list[np.ndarray] = []
    for start in range(0, len(structures), structures_per_call):
        group = range(start, min(start + structures_per_call, len(structures)))
        copies = [c for s in group for c in perturbed_copies(structures[s], plans[s])]
        values = np.asarray(energy_fn(copies), dtype=float).reshape(-1)
        if values.shape != (len(copies),):
            raise CheckError(f"the energy function returned {values.shape[0]} energies for {len(copies)} structures")
        energies += np.split(values, len(group))
    per = np.stack(energies) if energies else np.zeros((0, 1 + 2 * k_max * draws))
    half = k_max * draws
    n = len(structures)
    return PerturbationEnergies(
        reference_eV=per[:, 0],
        top_eV=per[:, 1 : 1 + half].reshape(n, k_max, draws),
        random_eV=per[:, 1 + half :].reshape(n, k_max, draws),
        top_atoms=np.array([p.order[:k_max] for p in plans], dtype=int).reshape(n, k_max),
    )


# --- features: ablation of the top SHAP features ------------------------------------------------


def r2_score(y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """R^2 along the last axis (NaN where y is constant); `prediction` may carry leading axes."""
    y, prediction = np.asarray(y, dtype=float), np.asarray(prediction, dtype=float)
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0.0:
        return np.full(prediction.shape[:-1], np.nan)
    return 1.0 - np.sum((prediction - y) ** 2, axis=-1) / total


@dataclass(frozen=True)
class SurrogateAblation:
    """Held-out predictions of a surrogate with its top-N and N random features replaced by training means."""

    y: np.ndarray  # (m,) held-out targets
    base: np.ndarray  # (m,) predictions, nothing replaced
    top: np.ndarray  # (m,) top-N SHAP features replaced
    random: np.ndarray  # (draws, m) N random features replaced
    top_features: tuple[str, ...]

    def drops(self, idx: np.ndarray | None = None) -> tuple[float, float, float]:
        """(held-out R^2, drop removing the top-N, mean drop removing N random) on structures idx."""
        i = np.arange(len(self.y)) if idx is None else idx
        r2 = r2_score(self.y[i], np.vstack([self.base[i], self.top[i], self.random[:, i]]))
        return float(r2[0]), float(r2[0] - r2[1]), float(np.mean(r2[0] - r2[2:]))

    def ratio_statistic(self) -> Statistic:
        def statistic(idx: np.ndarray) -> float:
            _, top, rand = self.drops(idx)
            if not np.isfinite(top) or not np.isfinite(rand):
                return float("nan")
            if rand <= 0.0:
                return float("inf") if top > 0 else float("nan")
            return top / rand

        return statistic

    def top_drop_statistic(self) -> Statistic:
        return lambda idx: self.drops(idx)[1]


def surrogate_ablation(
    X: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    *,
    make_model: Callable[[], object],
    top_n: int,
    draws: int,
    holdout_fraction: float,
    seed: int,
) -> SurrogateAblation:
    """Fit `make_model()` on a seeded training split, rank features by mean |TreeSHAP| there,
    and predict the held-out split with the top-N (or N random) features set to their training means.

    Random features are drawn uniformly from all features (they may include top ones).
    """
    from harness.explain.shap_tree import tree_shap
    from harness.explain.surrogate import rank_features
    from harness.profile import stage

    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n, f = X.shape
    names = list(feature_names)
    if len(names) != f or y.shape != (n,):
        raise CheckError(f"surrogate ablation: X {X.shape}, y {y.shape} and {len(names)} names do not match")
    if not 1 <= top_n < f:
        raise CheckError(f"top_n = {top_n} must be between 1 and the number of features - 1 ({f - 1})")
    n_test = int(round(holdout_fraction * n))
    if n_test < 3 or n - n_test < 3:
        raise CheckError(
            f"{n} structures with holdout_fraction {holdout_fraction} leave {n_test} held out and "
            f"{n - n_test} for the fit; both need at least 3"
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    model = make_model()
    with stage("surrogate"):
        model.fit(X[train], y[train])  # type: ignore[attr-defined]
    with stage("SHAP"):
        shap_values = tree_shap(model, X[train]).reshape(len(train), f)
    ranking = rank_features(np.mean(np.abs(shap_values), axis=0), names)
    index = {name: i for i, name in enumerate(names)}
    top_cols = np.array([index[name] for name in ranking[:top_n]])
    means = X[train].mean(axis=0)

    def predict(cols: np.ndarray) -> np.ndarray:
        ablated = X[test].copy()
        ablated[:, cols] = means[cols]
        return np.asarray(model.predict(ablated), dtype=float)  # type: ignore[attr-defined]

    random_cols = [rng.choice(f, size=top_n, replace=False) for _ in range(draws)]
    return SurrogateAblation(
        y=y[test],
        base=predict(np.array([], dtype=int)),
        top=predict(top_cols),
        random=np.stack([predict(c) for c in random_cols]),
        top_features=tuple(ranking[:top_n]),
    )
