"""Time the "what" path: SOAP vectors -> gradient-boosting surrogate (k-fold CV) -> TreeSHAP.

    python -m benchmarks.soap_shap --n 500 5000 --out DIR

Stages, each timed with ``time.perf_counter``:

* ``soap``: ``harness.explain.descriptors.soap_features`` (the paper's SOAP, inner average) with
  dscribe ``n_jobs`` 1 and 2;
* ``paper``: ``harness.explain.surrogate.ErrorSurrogate`` as the suites run it
  (GradientBoostingRegressor 200 x depth 8, 5-fold CV, refit, exact TreeSHAP);
* ``paper-parallel-cv``: the same estimators, the 5 CV fits spread over 2 processes
  (identical numbers; CV is 5 of the 6 fits);
* ``paper-no-cv``: the paper's refit and TreeSHAP only (to time 5,000 without the 5 CV fits);
* ``hist``: HistGradientBoostingRegressor (200 iterations, depth 8, histogram splits,
  OpenMP threads), 5-fold CV, exact TreeSHAP on it: a different, faster surrogate.

Frames: the 3,000 reference frames, then rattled copies (0.02 A) up to n. Target: the
per-atom reference energy's residual after a fit on composition (no model is run; the
surrogate's cost does not depend on which error it fits). Each variant reports its CV R^2.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS = ("paper", "paper-parallel-cv", "paper-no-cv", "hist")


def soap_matrix(structures: Sequence[Any], n_jobs: int = 1) -> tuple[np.ndarray, list[str], float]:
    from harness.explain.descriptors import soap_feature_names, soap_features
    from harness.suite.schema import Soap

    settings = Soap(species=["Cr", "Sb", "Te"])
    start = time.perf_counter()
    x = soap_features(structures, settings, n_jobs=n_jobs)
    return x, soap_feature_names(settings), time.perf_counter() - start


def _cv_r2(make: Any, x: np.ndarray, y: np.ndarray, folds: int, seed: int, n_jobs: int) -> float:
    from sklearn.model_selection import KFold, cross_val_score

    split = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(make(), x, y, cv=split, scoring="r2", n_jobs=n_jobs)))


def run_variant(variant: str, x: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Seconds for CV + refit + TreeSHAP of one variant, with its CV R^2 and SHAP additivity error."""
    import shap
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor

    from harness.explain.surrogate import ErrorSurrogate
    from harness.suite.schema import Surrogate

    s = Surrogate()
    start = time.perf_counter()
    if variant == "paper":
        fitted = ErrorSurrogate(s).fit(x, y, names)
        model, values, cv_r2 = fitted.model_, fitted.shap_values_, fitted.cv_r2_
        out: dict[str, Any] = {}
    else:
        if variant in ("paper-parallel-cv", "paper-no-cv"):
            def make() -> Any:
                return GradientBoostingRegressor(n_estimators=s.n_estimators, learning_rate=s.learning_rate,
                                                 max_depth=s.max_depth, random_state=s.seed)
            jobs = 2
        elif variant == "hist":
            def make() -> Any:
                return HistGradientBoostingRegressor(max_iter=s.n_estimators, learning_rate=s.learning_rate,
                                                     max_depth=s.max_depth, early_stopping=False,
                                                     random_state=s.seed)
            jobs = 1  # already threaded
        else:
            raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
        cv_r2 = float("nan") if variant == "paper-no-cv" else _cv_r2(make, x, y, s.cv_folds, s.seed, jobs)
        t_cv = time.perf_counter()
        model = make().fit(x, y)
        t_fit = time.perf_counter()
        values = np.asarray(shap.TreeExplainer(model).shap_values(x))
        out = dict(cv_seconds=t_cv - start, fit_seconds=t_fit - t_cv, shap_seconds=time.perf_counter() - t_fit)
    seconds = time.perf_counter() - start
    expected = shap.TreeExplainer(model).expected_value
    additivity = float(np.max(np.abs(values.sum(axis=1) + np.ravel(expected)[0] - model.predict(x))))
    return dict(variant=variant, n=len(y), seconds=seconds, cv_r2=float(cv_r2),
                shap_additivity_max_abs=additivity, **out)


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.data import energy_residual_per_atom, frames

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", nargs="+", type=int, default=[500, 5000])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--soap-jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    path = args.out / "soap_shap.json"
    for n in args.n:
        structures = frames(n, n_atoms=None)
        y = energy_residual_per_atom(structures)
        x = names = None
        for jobs in args.soap_jobs:
            x, names, seconds = soap_matrix(structures, jobs)
            results.append(dict(stage="soap", n=n, n_jobs=jobs, seconds=seconds))
            path.write_text(json.dumps(results, indent=1))
            print(results[-1], flush=True)
        assert x is not None and names is not None
        for variant in args.variants:
            results.append(dict(stage="surrogate+shap", **run_variant(variant, x, y, names)))
            path.write_text(json.dumps(results, indent=1))
            print(results[-1], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
