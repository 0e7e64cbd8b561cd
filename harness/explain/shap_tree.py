"""TreeSHAP for a fitted tree ensemble without shap's checks for Hugging Face models.

``shap.TreeExplainer(model)`` runs shap's generic ``Explainer`` set-up, which
asks whether the model or masker is a ``transformers`` model, pipeline or
tokenizer. shap looks only when ``transformers`` is already in ``sys.modules``,
but then each question touches a lazily loaded attribute of ``transformers``
and imports most of that library: 17 s on the GPU machine where it is
installed, for a model that is a scikit-learn tree ensemble. :func:`tree_explainer`
builds the same explainer with those questions answered "no" (they are about
text models) and nothing else changed; SHAP values are identical.
:func:`tree_shap` is what the surrogates call: XGBoost's own exact TreeSHAP
(``pred_contribs``) for an XGBoost model, shap's for any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _about_transformers(paths: Any) -> bool:
    names = [paths] if isinstance(paths, str) else list(paths) if isinstance(paths, (list, tuple)) else []
    return bool(names) and all(str(name).startswith("transformers.") for name in names)


@contextmanager
def _no_transformers_questions() -> Iterator[None]:
    """Within the block, shap's Explainer set-up answers its transformers questions without asking transformers."""
    try:
        from shap.explainers import _explainer as module
    except ImportError:  # a shap whose layout we do not know: its own (slow but correct) path
        yield
        return
    original_lm = getattr(module, "is_transformers_lm", None)
    original_isinstance = getattr(module, "safe_isinstance", None)
    if original_lm is None or original_isinstance is None:
        yield
        return

    def safe_isinstance(obj: Any, class_path_str: Any) -> bool:
        if _about_transformers(class_path_str):
            return False
        return original_isinstance(obj, class_path_str)

    module.is_transformers_lm = lambda model: False
    module.safe_isinstance = safe_isinstance
    try:
        yield
    finally:
        module.is_transformers_lm = original_lm
        module.safe_isinstance = original_isinstance


def tree_explainer(model: Any) -> Any:
    """``shap.TreeExplainer(model)`` (path-dependent TreeSHAP) for a fitted tree ensemble such as
    scikit-learn's ``GradientBoostingRegressor``, built without importing ``transformers``."""
    import shap

    if type(model).__module__.split(".")[0] == "transformers":  # never true for our surrogates
        return shap.TreeExplainer(model)
    with _no_transformers_questions():
        return shap.TreeExplainer(model)


def tree_shap(model: Any, x: Any) -> Any:
    """Path-dependent TreeSHAP values (rows x features) of a fitted tree ensemble on ``x``.

    An XGBoost model is explained by XGBoost itself (``pred_contribs=True``: the same exact
    algorithm as ``shap.TreeExplainer``, in C++, without importing shap; the bias column is
    dropped); any other model by :func:`tree_explainer`.
    """
    import numpy as np

    if type(model).__module__.split(".")[0] == "xgboost":
        import xgboost

        contributions = model.get_booster().predict(xgboost.DMatrix(np.asarray(x)), pred_contribs=True)
        return np.asarray(contributions, dtype=np.float64)[:, :-1]
    return np.asarray(tree_explainer(model).shap_values(x), dtype=np.float64)
