"""The per-model summaries of a results document (harness.reports.analysis) on a real tiny two-model run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import CheckError
from harness.gate.session import RunOptions, SuiteRun
from harness.reports.analysis import suite_section
from harness.reports.report import results_document
from harness.reports.results_schema import schema_errors
from harness.suite.loader import load_suite

from tiny_run import build_tiny_suite


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_suite(tmp_path_factory.mktemp("analysis"))


def _run(suite_file: Path) -> SuiteRun:
    run = SuiteRun(load_suite(suite_file), RunOptions(cache_dir=None, progress=False))
    for name in ("candidate", "other"):
        run.outputs(name)
    return run


def test_shap_only_where_asked_or_already_fitted(suite_file: Path) -> None:
    run = _run(suite_file)
    section = suite_section(run, explain="computed")
    assert all("shap" not in m for m in section["models"].values())  # no check fitted a surrogate yet
    assert section["pairwise_shared"] == {}
    run.explanation("candidate")
    section = suite_section(run, explain="computed")
    assert "shap" in section["models"]["candidate"] and "shap" not in section["models"]["other"]
    assert all("shap" not in m for m in suite_section(run, explain="none")["models"].values())
    section = suite_section(run, explain="all")
    assert {n for n, m in section["models"].items() if "shap" in m} == {"candidate", "other"}
    assert list(section["pairwise_shared"]) == ["candidate|other"]
    assert schema_errors(results_document([section], [])) == []
    with pytest.raises(CheckError, match="explain must be"):
        suite_section(run, explain="some")  # type: ignore[arg-type]


def test_summaries_agree_with_the_per_atom_scores(suite_file: Path) -> None:
    run = _run(suite_file)
    section = suite_section(run, explain="none")
    ref = run.reference
    for name in ("candidate", "other"):
        scores = run.scores(name)
        gradcam = section["models"][name]["gradcam"]
        for element in ("Cr", "Sb", "Te"):
            assert gradcam["per_element_mean"][element] == pytest.approx(float(np.mean(scores[ref.symbols == element])))
        assert gradcam["max"] == pytest.approx(float(np.max(scores)))
        assert sum(section["score_histogram"]["counts"][name]) == len(scores)
    view = section["structure_view"]
    # the picture shows the structure holding the candidate's highest-scored atom
    assert max(view["scores"]["candidate"]) == pytest.approx(float(np.max(run.scores("candidate"))))
    assert len(view["symbols"]) == len(view["positions_A"]) == len(view["scores"]["other"]) == 8
