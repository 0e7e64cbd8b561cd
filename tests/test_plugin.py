"""The pytest plugin end to end (pytester): collection, pass, fail, errors, summary, results."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


def _structures(n: int, seed: int) -> list[Atoms]:
    """Small periodic Cr/Sb/Te cells: rocksalt-like 8-atom cubes, rattled."""
    rng = np.random.default_rng(seed)
    base = np.array(
        [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]]
    )
    out = []
    for i in range(n):
        symbols = ["Sb"] * 4 + ["Te"] * 4
        symbols[int(rng.integers(0, 4))] = "Cr"
        atoms = Atoms(symbols, scaled_positions=base, cell=np.eye(3) * 6.1, pbc=True)
        atoms.rattle(0.08, seed=seed * 1000 + i)
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def tiny_suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MACE checkpoint, structures labelled by it (plus noise), and a suite."""
    from harness.mace_adapter import MaceModel, build_tiny_mace, save_model

    root = tmp_path_factory.mktemp("tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = build_tiny_mace(["Cr", "Sb", "Te"], seed=1, num_channels=8, max_L=0, r_max=4.0)
        save_model(module, root / "tiny.model")
        structures = _structures(12, seed=3)
        out = MaceModel.from_module(module, name="tiny").evaluate(structures, batch_size=6)
    rng = np.random.default_rng(0)
    offsets = out.offsets
    for i, atoms in enumerate(structures):
        atoms.info["REF_energy"] = float(out.energies_eV[i] + rng.normal(0, 0.01))
        atoms.arrays["REF_forces"] = out.forces_eV_per_A[offsets[i] : offsets[i + 1]] + rng.normal(0, 0.01, (8, 3))
    write(root / "structures.extxyz", structures, format="extxyz")
    return root


SUITE = """\
suite: tiny
reference: {{structures: structures.extxyz}}
models:
  candidate: {{checkpoint: tiny.model, sha256: {sha}}}
surrogate: {{n_estimators: 20, max_depth: 2, cv_folds: 3}}
checks:
  - accuracy:
      energy_rmse_meV_per_atom: {{max: {e_max}}}
  - gradcam_locus:
      element: Cr
      relu_zero_fraction: {{max: 1.0}}
"""


def _write_suite(directory: Path, text: str, name: str = "tiny.suite.yaml") -> Path:
    from harness.reference import sha256_file

    text = text.replace("{sha}", sha256_file(directory / "tiny.model"))
    path = directory / name
    path.write_text(text)
    return path


def test_passing_suite_passes_and_prints_table(pytester: pytest.Pytester, tiny_suite_dir: Path) -> None:
    # noise is 0.01 eV per 8-atom structure: RMSE ~1.25 meV/atom, far below 50
    _write_suite(tiny_suite_dir, SUITE.format(e_max=50, sha="{sha}"))
    results = tiny_suite_dir / "results.json"
    result = pytester.runpytest(str(tiny_suite_dir), "-p", "no:cacheprovider", f"--harness-results={results}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*mlff-harness summary*", "*candidate*accuracy*energy_rmse_meV_per_atom*PASS*"])
    doc = json.loads(results.read_text())
    assert doc["format"] == "mlff-harness-results/1"
    assert doc["passed"] is True
    assert {o["check"] for o in doc["outcomes"]} == {"accuracy", "gradcam_locus"}
    rmse = doc["suites"][0]["accuracy"]["candidate"]["energy_rmse_meV_per_atom"]
    assert 0.1 < rmse < 5.0


def test_unmeetable_threshold_fails_with_file_and_line(pytester: pytest.Pytester, tiny_suite_dir: Path) -> None:
    path = _write_suite(tiny_suite_dir, SUITE.format(e_max=0.0001, sha="{sha}"), name="strict.suite.yaml")
    result = pytester.runpytest(str(path), "-p", "no:cacheprovider")
    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=1)
    # the accuracy check starts on line 7 of the suite file
    result.stdout.fnmatch_lines(
        [f"*{path}:7: check 'accuracy' (accuracy) on model 'candidate' FAILED*", "*energy_rmse_meV_per_atom = *<= 0.0001*FAIL*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_malformed_suite_is_a_collection_error(pytester: pytest.Pytester, tiny_suite_dir: Path) -> None:
    text = SUITE.format(e_max=1, sha="{sha}").replace("element: Cr", "element: Cr\n      top_k_shar: {min: 0.5}")
    path = _write_suite(tiny_suite_dir, text, name="broken.suite.yaml")
    result = pytester.runpytest(str(path), "-p", "no:cacheprovider")
    assert result.ret == 2  # collection error
    assert f"{path}:11: checks[1].gradcam_locus.top_k_shar: unknown field" in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_candidate_override_needs_a_pin(pytester: pytest.Pytester, tiny_suite_dir: Path) -> None:
    from harness.reference import sha256_file

    _write_suite(tiny_suite_dir, SUITE.format(e_max=50, sha="{sha}"), name="override.suite.yaml")
    model = tiny_suite_dir / "tiny.model"
    path = tiny_suite_dir / "override.suite.yaml"
    refused = pytester.runpytest(str(path), "-p", "no:cacheprovider", f"--candidate={model}")
    refused.assert_outcomes(failed=2)
    refused.stdout.fnmatch_lines(["*no sha256 pin given*refusing to unpickle*"])
    pinned = pytester.runpytest(
        str(path), "-p", "no:cacheprovider", f"--candidate={model}", f"--candidate-sha256={sha256_file(model)}"
    )
    pinned.assert_outcomes(passed=2)
    missing = pytester.runpytest(str(path), "-p", "no:cacheprovider", "--candidate=/nonexistent.model")
    assert missing.ret == 2
    missing.stdout.fnmatch_lines(["*--candidate /nonexistent.model does not exist*"])


def test_cache_makes_a_rerun_reuse_model_outputs(pytester: pytest.Pytester, tiny_suite_dir: Path) -> None:
    _write_suite(tiny_suite_dir, SUITE.format(e_max=50, sha="{sha}"), name="cached.suite.yaml")
    path = tiny_suite_dir / "cached.suite.yaml"
    cache = tiny_suite_dir / "cache"
    first = pytester.runpytest(str(path), "-p", "no:cacheprovider", f"--harness-cache={cache}")
    first.assert_outcomes(passed=2)
    entries = sorted(p.name for p in (cache / "outputs").iterdir())
    assert len(entries) == 1
    second = pytester.runpytest(str(path), "-p", "no:cacheprovider", f"--harness-cache={cache}")
    second.assert_outcomes(passed=2)
    assert sorted(p.name for p in (cache / "outputs").iterdir()) == entries
