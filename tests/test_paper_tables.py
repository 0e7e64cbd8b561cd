"""The paper's comparison tables (harness.reports.paper_tables): overlaps and normalisation with known answers."""

from __future__ import annotations

import pytest

from harness.errors import DataError
from harness.reports.paper_tables import analysis_markdown, k_way_overlaps


def _model(max_score: float, cr: float, top: list[str]) -> dict:
    return {
        "accuracy": {"energy_rmse_meV_per_atom": 1.0, "force_rmse_meV_per_A": 10.0},
        "gradcam": {
            "max": max_score,
            "per_element_mean": {"Cr": cr, "Te": 0.1},
            "overall_mean": 0.2,
            "relu_zero_fraction": 0.5,
            "mean_ratio_to_host": cr / 0.1,
            "top_k_identity": {"Cr": 0.3, "Te": 0.7},
        },
        "shap": {
            "surrogate_cv_r2": 0.8,
            "involving_share": 0.5,
            "top_to_second_ratio": 2.0,
            "top": [{"name": n, "mean_abs_shap": 1.0} for n in top],
            "angular_histogram": {"0": 0.5, "3": 0.5},
        },
    }


def test_k_way_overlaps_known_answer() -> None:
    tops = {"a": ["x", "y", "z"], "b": ["y", "z", "w"], "c": ["z", "q", "y"]}
    assert k_way_overlaps(tops, 2) == {("a", "b"): 2, ("a", "c"): 2, ("b", "c"): 2}
    assert k_way_overlaps(tops, 3) == {("a", "b", "c"): 2}
    with pytest.raises(ValueError):
        k_way_overlaps(tops, 1)


def test_markdown_normalises_over_all_models_and_counts_overlaps() -> None:
    doc = {
        "top_n": 3,
        "models": {
            "a": _model(2.0, 1.0, ["Cr-Cr_n11_l0", "Sb-Te_n12_l3", "Te-Te_n11_l0"]),
            "b": _model(4.0, 2.0, ["Cr-Cr_n11_l0", "Sb-Te_n12_l3", "Cr-Te_n11_l1"]),
            "c": _model(1.0, 0.5, ["Cr-Cr_n11_l0", "Cr-Te_n11_l1", "Sb-Sb_n11_l2"]),
        },
    }
    text = analysis_markdown(doc, labels={"a": "Model A"})
    # every mean divided by the largest score of any model (4.0): Cr of b -> 0.5, of a -> 0.25
    assert "| Model A | 0.25 | 0.025 | 0.05 |" in text
    assert "| b | 0.5 | 0.025 | 0.05 |" in text
    # pairwise overlap row of a: itself 3, b 2, c 1; three-way overlap 1
    assert "| Model A | 3 | 2 | 1 |" in text
    assert "3-way: Model A & b & c: 1" in text


def test_not_a_measure_document_is_a_data_error() -> None:
    with pytest.raises(DataError, match="measure"):
        analysis_markdown({"models": {"a": {"accuracy": {}}}})


def test_focus_element_heads_the_columns_and_a_model_without_surrogate_is_a_row() -> None:
    model = _model(2.0, 1.0, ["Cr-Cr_n11_l0", "Sb-Te_n12_l3", "Te-Te_n11_l0"])
    unexplained = {**model, "shap": {"error": "the surrogate needs at least 10 structures"}}
    doc = {"top_n": 3, "focus_elements": ["Te"], "models": {"a": model, "b": unexplained}}
    text = analysis_markdown(doc)
    assert "| Te/host |" in text and "share involving Te" in text and "Cr/host" not in text
    assert "| b | n/a | n/a | n/a | the surrogate needs at least 10 structures |" in text
