"""The per-atom ranking in `mlff-harness measure` and in the HTML report (harness.reports.atom_summary).

The tiny real case of tests/test_atom_check.py: a tiny random MACE model whose
reference labels carry an exact Cr-Cr pair term (r0 = 3.5 A), so the model's
per-atom force error is that term. `measure` must rank the Cr-Cr class first
at r0's distance with the same numbers as the atom_error_classes check (one
explanation, not a second fit); the report must show the class table and the
structure coloured by the class's per-atom SHAP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_atom_check import TERM, tiny  # noqa: F401  (the module-scoped fixture)

from harness.gate.checks import run_check
from harness.gate.session import RunOptions, SuiteRun
from harness.reports.analysis import suite_section
from harness.reports.html_report import render_html
from harness.reports.measure import measure_models
from harness.reports.report import results_document
from harness.reports.results_schema import validate_results
from harness.suite.loader import load_suite

# no atom_error_classes check and no descriptor.pair_shells: measure falls back on the schema's defaults
BARE_SUITE = """\
suite: tiny-bare
reference: {{structures: planted.extxyz{extra}}}
models:
  candidate: {{checkpoint: a.model, sha256: {sha}}}
settings: {{dtype: float64, batch_size: 16, seed: 0}}
descriptor: {{soap: {{species: [Cr, Sb, Te], r_cut_A: 4.0, n_max: 2, l_max: 2}}}}
surrogate: {{n_estimators: 20, max_depth: 2, cv_folds: 2}}
checks:
  - accuracy:
      force_rmse_meV_per_A: {{max: 1.0e+6}}
"""


def _run(root: Path, name: str) -> SuiteRun:
    return SuiteRun(load_suite(root / f"{name}.suite.yaml"), RunOptions(progress=False))


def _bare(root: Path, extra: str = "") -> SuiteRun:
    from harness.files import sha256_file

    path = root / f"bare{len(extra)}.suite.yaml"
    path.write_text(BARE_SUITE.format(extra=extra, sha=sha256_file(root / "a.model")))
    return SuiteRun(load_suite(path), RunOptions(progress=False))


def test_measure_ranks_the_planted_pair_with_the_checks_numbers(tiny: Path) -> None:  # noqa: F811
    run = _run(tiny, "planted")
    doc = measure_models(run, top_n=5)
    json.dumps(doc, allow_nan=False)  # JSON-clean
    atoms = doc["models"]["candidate"]["atoms"]
    assert atoms["surrogate_cv_r2"] > 0.5
    top = atoms["top_classes"][0]
    assert top["class"] == "Cr-Cr" and top["label"].startswith("Cr-Cr pairs at")
    lo, hi = top["distance_range_A"]
    assert lo - 0.5 <= TERM.r0_A <= hi + 0.5, top
    assert sum(c["share"] for c in atoms["top_classes"]) <= 1.0 + 1e-9 and top["share"] > 0.5
    assert atoms["top_features"][0]["name"].startswith(("Cr|Cr@", "centre=Cr"))
    assert doc["atom_settings"]["check"] == "crcr-per-atom"
    assert not any("descriptor.pair_shells" in n for n in doc["atom_settings"]["notes"])
    # the same explanation as the check's (one fit, one cache), not a second path
    outcome = run_check(run.suite.checks[0], "candidate", run)
    assert [c["class"] for c in outcome.details["top_classes"]] == [c["class"] for c in atoms["top_classes"]]
    assert outcome.details["top_classes"][0]["share"] == pytest.approx(top["share"])
    assert "atoms" not in measure_models(run, top_n=5, atoms=False)["models"]["candidate"]


def test_measure_without_pair_shells_uses_the_defaults_and_says_so(tiny: Path) -> None:  # noqa: F811
    doc = measure_models(_bare(tiny), top_n=5)
    settings = doc["atom_settings"]
    assert settings["check"] is None and settings["pair_shells"]["species"] == ["Cr", "Sb", "Te"]
    notes = " ".join(settings["notes"])
    assert "no descriptor.pair_shells" in notes and "Cr, Sb, Te" in notes and "no atom_error_classes check" in notes
    assert doc["models"]["candidate"]["atoms"]["top_classes"][0]["class"] == "Cr-Cr"


def test_measure_undefined_per_atom_r2_is_null_with_its_reason(tiny: Path) -> None:  # noqa: F811
    # 3 structures cannot make the default 5 structure-grouped folds
    doc = measure_models(_bare(tiny, ", max_structures: 3"), top_n=5, elements=["Cr"], atoms=True)
    atoms = doc["models"]["candidate"]["atoms"]
    assert atoms["surrogate_cv_r2"] is None and atoms["top_classes"] == []
    reason = doc["undefined"]["$.models.candidate.atoms.surrogate_cv_r2"]
    assert reason == atoms["error"] and reason.startswith("per-atom surrogate:")
    json.dumps(doc, allow_nan=False)


def test_html_shows_the_class_table_and_the_coloured_structure(tiny: Path) -> None:  # noqa: F811
    run = _run(tiny, "planted")
    outcome = run_check(run.suite.checks[0], "candidate", run)  # the check computes the per-atom explanation
    document = results_document([suite_section(run, explain="none")], [outcome])
    validate_results(json.loads(json.dumps(document)))
    view = document["suites"][0]["models"]["candidate"]["atoms"]["structure"]
    assert view["class"] == "Cr-Cr" and len(view["shap"]) == len(view["symbols"])
    html = render_html(document)
    section = html.split('<section id="atom-classes-0">')[1].split("</section>")[0]
    assert "Cr-Cr pairs at" in section and "distance range (A)" in section
    assert 'data-plot="atom-class-structure-candidate"' in section and "data:image/png;base64," in section
    # without a per-atom explanation the section says how to get one, and draws nothing
    bare = _bare(tiny)
    bare.accuracy("candidate")
    plain = render_html(results_document([suite_section(bare, explain="none")], [outcome]))
    empty = plain.split('<section id="atom-classes-0">')[1].split("</section>")[0]
    assert "no per-atom explanation" in empty and "<img" not in empty


def test_cli_measure_no_atoms_skips_the_per_atom_fit(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    from harness.cli.main import main

    bare = _bare(tiny)  # writes the suite file
    assert main(["measure", str(bare.loaded.path), "--no-atoms", "--cache", "", "--top-n", "5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "atom_settings" not in doc and "atoms" not in doc["models"]["candidate"]


def test_explain_atoms_fits_where_no_check_did(tiny: Path) -> None:  # noqa: F811
    # what --harness-explain asks of the report: a per-atom explanation for a suite without an atom check
    bare = _bare(tiny)
    bare.accuracy("candidate")
    section = suite_section(bare, explain="none", explain_atoms=True)
    atoms = section["models"]["candidate"]["atoms"]
    assert atoms["top_classes"][0]["class"] == "Cr-Cr" and atoms["structure"]["class"] == "Cr-Cr"
    html = render_html(results_document([section], []))
    assert 'data-plot="atom-class-structure-candidate"' in html
