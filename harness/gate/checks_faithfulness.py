"""The faithfulness and sanity check kinds (issue 10), each a value with a bootstrap interval.

- ``attribution_faithfulness``: displacing the top Grad-CAM atoms changes the
  energy more than displacing random atoms;
- ``randomisation_sanity``: the Grad-CAM map changes when the weights are
  re-drawn (cascading from the readout);
- ``surrogate_faithfulness``: the top SHAP features carry the surrogate's
  held-out prediction.

Expensive arrays (perturbed energies, randomised scores, ablated predictions)
are cached by the run's cache, keyed by everything they depend on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness.cache import content_key
from harness.explain import metrics
from harness.explain.bootstrap import Interval, Statistic, bootstrap, nanmean_of
from harness.explain.faithfulness import (
    PerturbationEnergies,
    SurrogateAblation,
    perturbation_energies,
    surrogate_ablation,
)
from harness.explain.metrics import ZERO_VARIANCE_eV, constant_structures, undefined
from harness.gate.outcome import Measurement, judge, measure
from harness.gate.session import SuiteRun
from harness.models import gradcam_variant
from harness.suite.sanity_kinds import (
    AttributionFaithfulnessCheck,
    FaithfulnessBase,
    RandomisationSanityCheck,
    SurrogateFaithfulnessCheck,
)

Result = tuple[list[Measurement], str | None, dict[str, Any]]
ShapResult = tuple[list[Measurement], str | None, dict[str, Any], str | None]


def _n_structures(check: FaithfulnessBase, run: SuiteRun) -> int:
    n = len(run.reference)
    return n if check.max_structures is None else min(n, check.max_structures)


def _seed(check: Any, run: SuiteRun) -> int:
    return run.suite.settings.seed if check.seed is None else int(check.seed)


def _interval(check: FaithfulnessBase, run: SuiteRun, statistic: Statistic, n: int) -> Interval:
    b = check.bootstrap
    seed = run.suite.settings.seed if b.seed is None else b.seed
    return bootstrap(statistic, n, n_resamples=b.n_resamples, level=b.level, seed=seed)


def _interval_json(interval: Interval) -> dict[str, Any]:
    return {"point": interval.point, **interval.to_json()}


def _constant_map(model: str, run: SuiteRun, n: int) -> str | None:
    """Why the model's Grad-CAM map orders no atom in any of the first n structures, else None."""
    variant = run.suite.attribution.variant
    offsets = run.reference.offsets[: n + 1]
    scores = gradcam_variant(run.outputs(model).gradcam_raw[: offsets[-1]], variant)
    if bool(np.all(constant_structures(scores, offsets))):
        return (
            f"the Grad-CAM scores ({variant}) of model {model!r} are constant within each of the {n} structure(s) "
            "(all zero?): no atom ranks above another"
        )
    return None


def _undefined_result(check: Any, why: str, n: int) -> Result:
    return [judge(metric, bound, undefined(why)) for metric, bound in check.bounds().items()], None, {
        "n_structures": n, "undefined": why,
    }


# --- attribution_faithfulness -------------------------------------------------------------------


def _perturbation(check: AttributionFaithfulnessCheck, model: str, run: SuiteRun, n: int) -> PerturbationEnergies:
    variant = run.suite.attribution.variant
    key = content_key(
        "perturbation", run.evaluation_key(model), variant, n, check.k_max, check.draws, check.amplitude_A,
        _seed(check, run),
    )

    def compute() -> dict[str, np.ndarray]:
        trained = run.model(model)
        offsets = run.reference.offsets
        scores = gradcam_variant(run.outputs(model).gradcam_raw, variant)
        structures = list(run.reference.structures[:n])
        copies = 1 + 2 * check.k_max * check.draws
        return perturbation_energies(
            trained.energies,
            structures,
            [scores[offsets[s] : offsets[s + 1]] for s in range(n)],
            k_max=check.k_max,
            draws=check.draws,
            amplitude_A=check.amplitude_A,
            seed=_seed(check, run),
            structures_per_call=max(1, run.batch_size // copies),
        ).to_arrays()

    return PerturbationEnergies.from_arrays(run.cache.get_or_compute("perturbation", key, compute))


def _attribution_faithfulness(check: AttributionFaithfulnessCheck, model: str, run: SuiteRun) -> Result:
    n = _n_structures(check, run)
    constant = _constant_map(model, run, n)
    if constant is not None:
        return _undefined_result(check, f"{constant}, so there are no top atoms to displace", n)
    energies = _perturbation(check, model, run, n)
    values = {
        "top_to_random_dE_ratio": _interval(check, run, energies.ratio_statistic(check.k), n),
        "curve_area": _interval(check, run, energies.area_statistic(), n),
    }
    top, rand = energies.curves()
    details = {
        "n_structures": n,
        "k": check.k,
        "k_max": check.k_max,
        "amplitude_A": check.amplitude_A,
        "draws": check.draws,
        "mean_abs_dE_eV_top_curve": top.mean(axis=0).tolist(),
        "mean_abs_dE_eV_random_curve": rand.mean(axis=0).tolist(),
        **{name: _interval_json(v) for name, v in values.items()},
    }
    return measure(check, values), None, details


# --- randomisation_sanity -----------------------------------------------------------------------


def _randomised_correlations(
    check: RandomisationSanityCheck, model: str, run: SuiteRun, n: int
) -> tuple[list[str], np.ndarray]:
    """Stage labels and (stages, n) per-structure Spearman correlations, trained vs randomised."""
    variant, layer = run.suite.attribution.variant, run.suite.attribution.layer
    seed = _seed(check, run)
    key = content_key("randomisation", run.evaluation_key(model), variant, n, check.cascade, seed, check.redraw)

    def compute() -> dict[str, np.ndarray]:
        from harness.models.randomise import cascade_stages, structure_seed

        trained = run.model(model)
        offsets = run.reference.offsets[: n + 1]
        mine = gradcam_variant(run.outputs(model).gradcam_raw[: offsets[-1]], variant)
        structures = list(run.reference.structures[:n])
        # once: one draw (the seed) for every structure; per_structure: structure i's own draw
        if check.redraw == "once":
            members, seeds = [list(range(n))], [seed]
        else:
            members, seeds = [[i] for i in range(n)], [structure_seed(seed, i) for i in range(n)]
        labels, rows = [], []
        for label, blocks in cascade_stages(trained.cascade_blocks(), cascade=check.cascade):
            parts = [
                randomised.gradcam([structures[i] for i in chosen], batch_size=run.batch_size, layer=layer)
                for chosen, randomised in zip(members, trained.randomised_copies(blocks, seeds), strict=True)
            ]
            labels.append(label)
            rows.append(metrics.rank_correlations(mine, gradcam_variant(np.concatenate(parts), variant), offsets))
        return {"labels": np.array(labels), "correlations": np.stack(rows)}

    arrays = run.cache.get_or_compute("randomisation", key, compute)
    return [str(v) for v in arrays["labels"]], arrays["correlations"]


def max_of_stage_means(correlations: np.ndarray) -> Statistic:
    """Statistic: the largest over stages of the mean (finite) per-structure correlation."""
    stage_means = [nanmean_of(row) for row in correlations]

    def statistic(idx: np.ndarray) -> float:
        values = [m(idx) for m in stage_means]
        finite = [v for v in values if np.isfinite(v)]
        return max(finite) if finite else float("nan")

    return statistic


def _randomisation_sanity(check: RandomisationSanityCheck, model: str, run: SuiteRun) -> Result:
    n = _n_structures(check, run)
    constant = _constant_map(model, run, n)
    if constant is not None:
        return _undefined_result(check, f"{constant}, so no rank correlation with a randomised map", n)
    labels, correlations = _randomised_correlations(check, model, run, n)
    stages = [_interval(check, run, nanmean_of(row), n) for row in correlations]
    values = {
        "max_rank_correlation": _interval(check, run, max_of_stage_means(correlations), n),
        "all_layers_rank_correlation": stages[-1],
    }
    details = {
        "n_structures": n,
        "stages": [{"randomised_up_to": label, **_interval_json(iv)} for label, iv in zip(labels, stages, strict=True)],
        "nan_structures": int(np.sum(~np.isfinite(correlations[-1]))),
        **{name: _interval_json(v) for name, v in values.items()},
    }
    return measure(check, values), None, details


# --- surrogate_faithfulness ---------------------------------------------------------------------


def _ablation(check: SurrogateFaithfulnessCheck, model: str, run: SuiteRun, n: int) -> SurrogateAblation:
    surrogate = run.suite.surrogate
    key = content_key(
        "ablation", run.evaluation_key(model), run.suite.descriptor.soap.model_dump(), surrogate.model_dump(),
        n, check.top_n, check.draws, check.holdout_fraction, _seed(check, run),
    )
    names = run.soap[1]

    def compute() -> dict[str, np.ndarray]:
        from harness.explain.surrogate import new_estimator

        def make_model():  # -> GradientBoostingRegressor
            return new_estimator(surrogate, seed=_seed(check, run))

        result = surrogate_ablation(
            run.soap[0][:n], run.error_target(model)[:n], names, make_model=make_model, top_n=check.top_n,
            draws=check.draws, holdout_fraction=check.holdout_fraction, seed=_seed(check, run),
        )
        return {"y": result.y, "base": result.base, "top": result.top, "random": result.random,
                "top_features": np.array(result.top_features)}

    a = run.cache.get_or_compute("ablation", key, compute)
    return SurrogateAblation(a["y"], a["base"], a["top"], a["random"], tuple(str(v) for v in a["top_features"]))


def _surrogate_faithfulness_undefined(
    check: SurrogateFaithfulnessCheck, model: str, run: SuiteRun, n: int
) -> str | None:
    """Why the held-out ablation cannot be measured on n structures, else None."""
    n_test = int(round(check.holdout_fraction * n))
    if n_test < 3 or n - n_test < 3:
        return (
            f"{n} structure(s) with holdout_fraction {check.holdout_fraction} leave {n_test} held out and "
            f"{n - n_test} for the fit; both need at least 3"
        )
    target = run.error_target(model)[:n]
    if not float(np.std(target)) > ZERO_VARIANCE_eV:
        return f"model {model!r} has the same energy error on every structure: the surrogate has nothing to explain"
    return None


def _surrogate_faithfulness(check: SurrogateFaithfulnessCheck, model: str, run: SuiteRun) -> ShapResult:
    n = _n_structures(check, run)
    why = _surrogate_faithfulness_undefined(check, model, run, n)
    if why is not None:
        return [
            judge(metric, bound, undefined(why), gate=metric == "heldout_r2")
            for metric, bound in check.bounds().items()
        ], None, {"n_structures": n, "undefined": why}, None
    ablation = _ablation(check, model, run, n)
    r2, top_drop, random_drop = ablation.drops()
    m = len(ablation.y)
    values = {
        "top_to_random_r2_drop_ratio": _interval(check, run, ablation.ratio_statistic(), m),
        "top_r2_drop": _interval(check, run, ablation.top_drop_statistic(), m),
    }
    gate = judge("heldout_r2", check.heldout_r2, r2, gate=True)
    others = [
        x for x in measure(check, {**values, "heldout_r2": r2}, evaluated=gate.passed) if x.metric != "heldout_r2"
    ]
    reason = unexplained = None
    if not gate.passed and not gate.undefined:
        unexplained = (
            f"surrogate held-out R^2 = {r2:.3f} is outside {check.heldout_r2.describe()}: the surrogate does not "
            "predict the held-out structures, so it says nothing about its features and no drop is judged"
        )
    details = {
        "n_structures": n,
        "n_heldout": m,
        "heldout_r2": r2,
        "top_features": list(ablation.top_features),
        "random_r2_drop_mean": random_drop,
        **{name: _interval_json(v) for name, v in values.items()},
    }
    return [gate, *others], reason, details, unexplained


KINDS: dict[str, Callable[[Any, str, SuiteRun], Result | ShapResult]] = {
    "attribution_faithfulness": _attribution_faithfulness,
    "randomisation_sanity": _randomisation_sanity,
    "surrogate_faithfulness": _surrogate_faithfulness,
}
