"""harness.explain.shap_tree: the same TreeSHAP values as shap.TreeExplainer, without touching transformers."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import shap
from sklearn.ensemble import GradientBoostingRegressor

from harness.explain.shap_tree import tree_explainer


@pytest.fixture(scope="module")
def fitted() -> tuple[GradientBoostingRegressor, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 7))
    y = x[:, 0] * 2 - x[:, 3] * x[:, 1] + rng.normal(scale=0.1, size=60)
    return GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(x, y), x


def test_identical_shap_values(fitted: tuple[GradientBoostingRegressor, np.ndarray]) -> None:
    model, x = fitted
    ours = tree_explainer(model)
    theirs = shap.TreeExplainer(model)
    np.testing.assert_array_equal(ours.shap_values(x), theirs.shap_values(x))
    assert ours.expected_value == theirs.expected_value
    # local accuracy: SHAP values add up to the prediction
    np.testing.assert_allclose(ours.shap_values(x).sum(axis=1) + ours.expected_value, model.predict(x), atol=1e-9)


def test_an_importable_transformers_is_never_imported(
    fitted: tuple[GradientBoostingRegressor, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = tmp_path / "transformers"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise RuntimeError('transformers was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "transformers", raising=False)
    model, x = fitted
    tree_explainer(model).shap_values(x[:3])
    assert "transformers" not in sys.modules


def test_an_already_imported_lazy_transformers_is_not_touched(
    fitted: tuple[GradientBoostingRegressor, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformers loads its classes lazily on attribute access (the 17 s of issue 17); shap's own
    constructor asks for them when transformers is in sys.modules, ours does not."""
    model, x = fitted
    expected = shap.TreeExplainer(model).shap_values(x)  # before transformers is "imported"
    touched: list[str] = []
    lazy = types.ModuleType("transformers")

    def heavy(name: str) -> object:
        touched.append(name)
        raise RuntimeError(f"transformers.{name} would import most of transformers")

    lazy.__getattr__ = heavy  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "transformers", lazy)
    explainer = tree_explainer(model)
    assert touched == []
    np.testing.assert_array_equal(explainer.shap_values(x), expected)
    with pytest.raises(RuntimeError, match="would import most of transformers"):
        shap.TreeExplainer(model)  # what the harness used to run
    assert touched  # the stub is a faithful stand-in: shap's own path does reach for it


def test_shap_keeps_its_own_checks_afterwards() -> None:
    from shap.explainers import _explainer

    from harness.explain.shap_tree import _no_transformers_questions

    before = (_explainer.is_transformers_lm, _explainer.safe_isinstance)
    with _no_transformers_questions():
        assert _explainer.is_transformers_lm(object()) is False
    assert (_explainer.is_transformers_lm, _explainer.safe_isinstance) == before
