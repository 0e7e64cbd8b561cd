"""A gradient-boosting surrogate of a force field's errors, explained by SHAP.

DUAL-X (Cao et al.) fits ``GradientBoostingRegressor`` from structure
descriptors (SOAP) to the model's error, checks the fit by k-fold
cross-validated R^2 and ranks descriptor features by mean |SHAP| from
TreeSHAP. Its settings are the suite schema's ``surrogate`` block (:class:`harness.suite.schema.Surrogate`,
the paper's defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from harness.errors import CheckError, DataError
from harness.suite.schema import Surrogate

ErrorKind = Literal["absolute", "signed"]
ErrorPer = Literal["atom", "structure"]
Estimator = Literal["gradient_boosting", "hist_gradient_boosting", "xgboost"]


def new_estimator(settings: Surrogate, *, seed: int = 0, estimator: Estimator | None = None):
    """An unfitted booster with the suite's surrogate settings, seeded; the one place a surrogate
    model is built. ``estimator`` (default: the settings') picks the library:

    - ``gradient_boosting``: scikit-learn's ``GradientBoostingRegressor``, the paper's;
    - ``xgboost``: XGBoost's exact greedy trees with the same shape (no L2 term, at least one
      row per leaf, the mean as base score), ~10x faster; its parity with the paper's on the
      shipped checkpoints is measured in ``benchmarks/surrogate_parity.py``. Always the CPU
      ``exact`` method, so a GPU and a CPU fit the same trees;
    - ``hist_gradient_boosting``: scikit-learn's histogram booster with its own leaf limits (at
      least 20 rows per leaf, 31 leaves), for the per-atom surrogate's thousands of rows.
    """
    estimator = estimator or settings.estimator
    if estimator == "xgboost":
        return _xgboost_regressor(settings, seed)
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor

    if estimator == "hist_gradient_boosting":
        return HistGradientBoostingRegressor(
            max_iter=settings.n_estimators,
            learning_rate=settings.learning_rate,
            max_depth=settings.max_depth,
            early_stopping=False,
            random_state=seed,
        )
    if estimator != "gradient_boosting":
        raise CheckError(f"estimator {estimator!r} not in gradient_boosting/hist_gradient_boosting/xgboost")
    return GradientBoostingRegressor(
        n_estimators=settings.n_estimators,
        learning_rate=settings.learning_rate,
        max_depth=settings.max_depth,
        random_state=seed,
    )


def _xgboost_regressor(settings: Surrogate, seed: int):
    try:
        import xgboost
    except ImportError:
        raise CheckError(
            "the suite's surrogate has estimator: xgboost, but XGBoost is not installed "
            "(fix: pip install xgboost, or set surrogate.estimator: gradient_boosting, the paper's)"
        ) from None
    from joblib import cpu_count  # honours CPU affinity, cgroup quotas and LOKY_MAX_CPU_COUNT

    return xgboost.XGBRegressor(
        n_estimators=settings.n_estimators,
        learning_rate=settings.learning_rate,
        max_depth=settings.max_depth,
        tree_method="exact",
        reg_lambda=0.0,
        min_child_weight=1.0,
        random_state=seed,
        n_jobs=cpu_count(),
    )


def error_target(
    e_model: np.ndarray | Sequence[float],
    e_ref: np.ndarray | Sequence[float],
    n_atoms: np.ndarray | Sequence[int],
    *,
    kind: ErrorKind,
    per: ErrorPer,
) -> np.ndarray:
    """The surrogate's target in eV: model minus reference energy.

    ``kind="signed"`` keeps the sign (model - reference), ``"absolute"`` takes
    its magnitude; ``per="atom"`` divides by each structure's atom count.
    """
    em = np.asarray(e_model, dtype=np.float64)
    er = np.asarray(e_ref, dtype=np.float64)
    na = np.asarray(n_atoms)
    if em.ndim != 1 or er.shape != em.shape or na.shape != em.shape:
        raise DataError(
            f"error_target needs three 1-D arrays of one length; got shapes "
            f"e_model {em.shape}, e_ref {er.shape}, n_atoms {na.shape}"
        )
    if not (np.all(np.isfinite(em)) and np.all(np.isfinite(er))):
        bad = np.flatnonzero(~(np.isfinite(em) & np.isfinite(er)))
        raise DataError(f"non-finite energies at structure(s) {bad[:10].tolist()}")
    if kind not in ("absolute", "signed"):
        raise CheckError(f"error_target kind={kind!r} not in 'absolute'/'signed'")
    if per not in ("atom", "structure"):
        raise CheckError(f"error_target per={per!r} not in 'atom'/'structure'")
    diff = em - er
    if per == "atom":
        if not np.issubdtype(na.dtype, np.number):
            raise DataError(f"n_atoms must be positive integers, got dtype {na.dtype}")
        bad = np.flatnonzero(~((na > 0) & (na == np.round(na))))
        if bad.size:
            raise DataError(
                f"n_atoms must be positive integers; bad at structure(s) {bad[:10].tolist()}"
            )
        diff = diff / na.astype(np.float64)
    if kind == "absolute":
        diff = np.abs(diff)
    return diff


def _validate(
    x: np.ndarray, y: np.ndarray, feature_names: Sequence[str], cv_folds: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2:
        raise CheckError(f"surrogate X must be 2-D (samples x features), got shape {x.shape}")
    if y.ndim != 1:
        raise CheckError(f"surrogate y must be 1-D, got shape {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise CheckError(f"surrogate X has {x.shape[0]} rows but y has {y.shape[0]} values")
    if not np.all(np.isfinite(x)):
        rows = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
        raise CheckError(f"surrogate X has non-finite values in row(s) {rows[:10].tolist()}")
    if not np.all(np.isfinite(y)):
        rows = np.flatnonzero(~np.isfinite(y))
        raise CheckError(f"surrogate y has non-finite values at {rows[:10].tolist()}")
    need = 2 * cv_folds
    if x.shape[0] < need:
        raise CheckError(
            f"surrogate needs at least {need} samples for {cv_folds}-fold "
            f"cross-validation, got {x.shape[0]}"
        )
    names = [str(n) for n in feature_names]
    if len(names) != x.shape[1]:
        raise CheckError(
            f"{len(names)} feature names for {x.shape[1]} features in X"
        )
    if len(set(names)) != len(names):
        raise CheckError("surrogate feature names are not unique")
    return x, y, names


# When a pool of worker processes pays for the k + 1 fits (benchmarks/surrogate_pool.py, numbers in
# benchmarks/README.md, "The surrogate's process pool"): one GradientBoostingRegressor fit costs about
# 3e-8 s per row x feature x tree x depth level on one core (2.9e-8 on the 2-core VM, 4.5e-8 on the H200
# host), and a cold pool 2.6-3.9 s before its first fit ends (worker start-up, imports, pickling).
_FIT_SECONDS_PER_UNIT = 3e-8
_POOL_START_SECONDS = 4.0


def pool_workers(rows: int, features: int, settings: Surrogate, cores: int) -> int:
    """How many processes should run the ``cv_folds + 1`` fits of a ``rows`` x ``features`` problem.

    One (in this process) unless the fitting time a pool saves, with one worker per fit up to
    ``cores``, exceeds a cold pool's start-up: the shipped gate's 300 x 390 paper surrogate is
    pooled (~50 s of fits, 20 s wall on the H200 host), a 12-structure test suite is not (a pool
    would add ~3 s to a 0.1 s fit). Results do not depend on the answer (seeded, independent fits).
    """
    if min(rows, features, cores) < 1:
        raise CheckError(f"pool_workers needs rows, features and cores >= 1; got {rows}, {features}, {cores}")
    jobs = settings.cv_folds + 1
    workers = min(jobs, cores)
    serial = rows * features * settings.n_estimators * settings.max_depth * jobs * _FIT_SECONDS_PER_UNIT
    pooled = serial * -(-jobs // workers) / jobs  # the busiest worker's share
    return workers if serial - pooled > _POOL_START_SECONDS else 1


class ErrorSurrogate:
    """Gradient-boosting model of per-structure errors, explained by TreeSHAP.

    After :meth:`fit`: ``workers_`` (processes that ran the fits; 1: this one),
    ``cv_r2_`` (mean k-fold R^2), ``cv_r2_folds_``,
    ``model_`` (refit on all data), ``shap_values_`` (S x F),
    ``importance_`` (mean |SHAP| per feature), ``feature_names_`` and
    ``ranking_`` (names by importance, descending; ties by name).
    """

    def __init__(
        self,
        settings: Surrogate | None = None,
        *,
        seed: int = 0,
        estimator: Estimator | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Surrogate()
        self.seed = seed
        self.estimator: Estimator = estimator or self.settings.estimator
        if n_jobs is not None and n_jobs < 1:
            raise CheckError(f"ErrorSurrogate n_jobs={n_jobs} must be >= 1 (or None: one per core)")
        self.n_jobs = n_jobs

    def _new_model(self):  # -> GradientBoostingRegressor | HistGradientBoostingRegressor
        return new_estimator(self.settings, seed=self.seed, estimator=self.estimator)

    def _workers(self, rows: int, features: int) -> int:
        if self.n_jobs is not None:
            return self.n_jobs
        if self.estimator == "xgboost":  # threads of its own; a fit takes well under a second
            return 1
        from joblib import cpu_count  # honours CPU affinity, cgroup quotas and LOKY_MAX_CPU_COUNT

        return pool_workers(rows, features, self.settings, cpu_count())

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: Sequence[str],
        *,
        groups: np.ndarray | Sequence[int] | None = None,
    ) -> ErrorSurrogate:
        """Cross-validate, refit on all data and explain it.

        ``groups`` (one label per row, e.g. the structure of each atom) keeps
        every group inside one fold (seeded GroupKFold): rows of one structure
        never sit in both a training and a test fold, which would inflate R^2.

        The k fold fits and the refit are independent and seeded, so they may
        run in parallel processes with results identical to a serial run:
        ``n_jobs`` processes, or by default as many as :func:`pool_workers`
        finds worth starting (one, i.e. in this process, for small fits).
        ``workers_`` says how many ran them.
        """
        from joblib import Parallel, delayed
        from sklearn.model_selection import KFold

        s = self.settings
        x, yv, names = _validate(X, y, feature_names, s.cv_folds)

        from harness.explain.shap_tree import tree_shap
        from harness.profile import stage
        from harness.progress import bar

        if groups is None:
            folds = list(KFold(n_splits=s.cv_folds, shuffle=True, random_state=self.seed).split(x))
        else:
            folds = _group_folds(np.asarray(groups), len(yv), s.cv_folds, self.seed)
        everything = np.arange(len(yv))
        jobs = [*folds, (everything, None)]  # the last: the refit
        with bar(desc="surrogate (CV folds, fit, SHAP)", total=len(jobs) + 1, unit="step") as steps:
            # n_jobs=1 runs in this process, in order
            self.workers_ = self._workers(*x.shape)
            parallel = Parallel(n_jobs=self.workers_, return_as="generator")
            results = []
            with stage("surrogate"):
                for result in parallel(delayed(_fit_and_score)(self._new_model(), x, yv, tr, te) for tr, te in jobs):
                    results.append(result)
                    steps.update()
            self.cv_r2_folds_ = np.asarray([score for _, score in results[:-1]], dtype=np.float64)
            self.cv_r2_ = float(np.mean(self.cv_r2_folds_))
            self.model_ = results[-1][0]
            with stage("SHAP"):  # without shap's transformers checks (harness.explain.shap_tree)
                shap_values = tree_shap(self.model_, x)
            steps.update()
        self.shap_values_ = np.asarray(shap_values, dtype=np.float64).reshape(x.shape)
        self.importance_ = np.mean(np.abs(self.shap_values_), axis=0)
        self.feature_names_ = names
        self.ranking_ = rank_features(self.importance_, names)
        return self

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` most important features with their mean |SHAP|."""
        if not hasattr(self, "ranking_"):
            raise CheckError("ErrorSurrogate.top called before fit")
        if n < 0:
            raise CheckError(f"top(n) needs n >= 0, got {n}")
        index = {name: i for i, name in enumerate(self.feature_names_)}
        return [(name, float(self.importance_[index[name]])) for name in self.ranking_[:n]]


def _group_folds(groups: np.ndarray, n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded k-fold split that keeps each group's rows in one fold."""
    from sklearn.model_selection import GroupKFold

    if groups.shape != (n,):
        raise CheckError(f"surrogate groups has shape {groups.shape}, expected ({n},)")
    if len(np.unique(groups)) < k:
        raise CheckError(f"{len(np.unique(groups))} groups cannot make {k} cross-validation folds")
    return list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n), groups=groups))


def _fit_and_score(model, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray | None):
    """Fit ``model`` on the ``train`` rows; its R^2 on the ``test`` rows (None without them)."""
    from sklearn.metrics import r2_score

    model.fit(x[train], y[train])
    score = None if test is None else float(r2_score(y[test], model.predict(x[test])))
    return model, score


def rank_features(importance: np.ndarray, names: Sequence[str]) -> list[str]:
    """Names sorted by importance (descending), ties broken by name."""
    imp = np.asarray(importance, dtype=np.float64)
    if imp.shape != (len(names),):
        raise CheckError(f"{imp.shape} importances for {len(names)} names")
    order = sorted(range(len(names)), key=lambda i: (-imp[i], names[i]))
    return [names[i] for i in order]
