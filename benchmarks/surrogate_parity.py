"""Does XGBoost's surrogate say what the paper's scikit-learn surrogate says? (issue 17, lever 2)

    python -m benchmarks.surrogate_parity --out DIR [--seeds 0 1 2] [--models candidate rerun ...]

For every shipped Cr:Sb2Te3 checkpoint (the models of ``suites/cr_sb2te3/measure.yaml``) this
evaluates the model's energies on the 300 reference structures (CPU, float64, cached in
``DIR/energies-<name>.npy``), builds the gate's target (signed per-atom energy error) and SOAP
matrix (the suites' settings), and fits the surrogate of ``harness.explain.surrogate`` with the
paper's ``GradientBoostingRegressor`` and with XGBoost (``estimator: xgboost``), same folds, same
seed, for each ``--seeds`` value. Per model and seed it records the wall time of the k + 1 fits
and TreeSHAP, the 5-fold CV R^2 of each, and how the two top-20 rankings agree:

- ``spearman_top20``: Spearman's rho of the two importance vectors (mean |SHAP|) over the union of
  the two top-20 sets (a feature that only one of them ranks counts, with its rank in the other);
- ``shared_top20``: how many features the two top-20 sets share;
- ``l0_share``: the error-classes check's metric (share of the top 20 in the l=0 channel) for each.

The issue's parity bar: CV R^2 within 0.02 and ``spearman_top20`` >= 0.9 on every checkpoint. The
same numbers for the paper's surrogate against itself with the next seed (``paper_self_*``) are the
noise floor of that comparison.
Writes ``surrogate_parity.json`` and ``surrogate_parity.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MEASURE = REPO / "suites" / "cr_sb2te3" / "measure.yaml"
TOP = 20


def _models() -> dict[str, Path]:
    from harness.suite.loader import load_suite

    suite = load_suite(MEASURE).suite
    base = MEASURE.parent
    models = {"candidate": suite.models.candidate.checkpoint}
    models.update({name: ref.checkpoint for name, ref in (suite.models.compare_with or {}).items()})
    return {name: (base / path).resolve() for name, path in models.items()}


def _energies(name: str, path: Path, structures: list, out: Path) -> np.ndarray:
    cached = out / f"energies-{name}.npy"
    if cached.exists():
        return np.load(cached)
    from harness.models import load_model

    model = load_model(path, device="cpu", dtype="float64")
    energies = np.concatenate([model.energies(structures[i : i + 1]) for i in range(len(structures))])
    np.save(cached, energies)
    return energies


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def compare(x: np.ndarray, y: np.ndarray, names: list[str], seed: int) -> dict[str, Any]:
    """Both surrogates on one problem: times, CV R^2, top-20 agreement."""
    from harness.explain.surrogate import ErrorSurrogate
    from harness.suite.schema import Surrogate

    row: dict[str, Any] = {"seed": seed}
    fitted = {}
    for estimator in ("gradient_boosting", "xgboost"):
        settings = Surrogate(target="signed", per="atom", estimator=estimator)
        start = time.perf_counter()
        fitted[estimator] = ErrorSurrogate(settings, seed=seed).fit(x, y, names)
        row[estimator] = {
            "seconds": round(time.perf_counter() - start, 2),
            "workers": fitted[estimator].workers_,
            "cv_r2": round(fitted[estimator].cv_r2_, 4),
            "top20": fitted[estimator].ranking_[:TOP],
            "l0_share": _l0(fitted[estimator].ranking_[:TOP]),
        }
    # the noise floor: the paper's surrogate against itself with the next seed (other folds, other
    # tie-breaking among equally good splits)
    paper = fitted["gradient_boosting"]
    again = ErrorSurrogate(Surrogate(target="signed", per="atom"), seed=seed + 1).fit(x, y, names)
    row["paper_next_seed"] = {"cv_r2": round(again.cv_r2_, 4), "l0_share": _l0(again.ranking_[:TOP])}
    row.update(_agreement(paper, fitted["xgboost"], names, ""))
    row.update(_agreement(paper, again, names, "paper_self_"))
    return row


def _l0(top: list[str]) -> float:
    from harness.explain.metrics import share_with_l  # the error-classes check's angular_l_share

    return share_with_l(top, [0])


def _agreement(a: Any, b: Any, names: list[str], prefix: str) -> dict[str, Any]:
    union = sorted(set(a.ranking_[:TOP]) | set(b.ranking_[:TOP]))
    index = {name: i for i, name in enumerate(names)}
    columns = [index[n] for n in union]
    return {
        f"{prefix}spearman_top20": round(_spearman(a.importance_[columns], b.importance_[columns]), 4),
        f"{prefix}shared_top20": len(set(a.ranking_[:TOP]) & set(b.ranking_[:TOP])),
        f"{prefix}cv_r2_difference": round(b.cv_r2_ - a.cv_r2_, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--models", nargs="+", default=None, help="model names of measure.yaml (default: all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from harness.data.reference import load_reference
    from harness.explain.descriptors import soap_feature_names, soap_features
    from harness.explain.surrogate import error_target
    from harness.suite.schema import Soap

    reference = load_reference(REPO / "reference_data" / "cr_sb2te3" / "test.extxyz.gz")
    structures = list(reference.structures)
    soap = Soap(species=list(reference.elements))
    x = soap_features(structures, soap, n_jobs=1)
    names = soap_feature_names(soap)
    models = _models()
    rows = []
    for name in args.models or list(models):
        energies = _energies(name, models[name], structures, args.out)
        y = error_target(energies, reference.energies_eV, reference.n_atoms, kind="signed", per="atom")
        for seed in args.seeds:
            row = {"model": name, **compare(x, y, names, seed)}
            rows.append(row)
            gb, xg = row["gradient_boosting"], row["xgboost"]
            print(
                f"{name:<22} seed {seed}: CV R^2 {gb['cv_r2']:.4f} vs {xg['cv_r2']:.4f} "
                f"(diff {row['cv_r2_difference']:+.4f}), spearman {row['spearman_top20']:.3f}, "
                f"shared {row['shared_top20']}/20, l0 {gb['l0_share']:.2f} vs {xg['l0_share']:.2f}, "
                f"{gb['seconds']:.1f} s vs {xg['seconds']:.1f} s; paper vs itself (seed + 1): "
                f"CV R^2 {row['paper_self_cv_r2_difference']:+.4f}, spearman {row['paper_self_spearman_top20']:.3f}, "
                f"shared {row['paper_self_shared_top20']}/20, l0 {row['paper_next_seed']['l0_share']:.2f}",
                flush=True,
            )
    (args.out / "surrogate_parity.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "| model | seed | CV R^2 paper | CV R^2 xgboost | diff | Spearman top-20 | shared | l=0 share paper / xgb "
        "| s paper | s xgboost | paper seed+1: CV R^2 diff | Spearman | shared | l=0 share |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        gb, xg = row["gradient_boosting"], row["xgboost"]
        lines.append(
            f"| {row['model']} | {row['seed']} | {gb['cv_r2']:.4f} | {xg['cv_r2']:.4f} "
            f"| {row['cv_r2_difference']:+.4f} "
            f"| {row['spearman_top20']:.3f} | {row['shared_top20']} | {gb['l0_share']:.2f} / {xg['l0_share']:.2f} "
            f"| {gb['seconds']:.1f} | {xg['seconds']:.1f} "
            f"| {row['paper_self_cv_r2_difference']:+.4f} "
            f"| {row['paper_self_spearman_top20']:.3f} | {row['paper_self_shared_top20']} "
            f"| {row['paper_next_seed']['l0_share']:.2f} |"
        )
    (args.out / "surrogate_parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
