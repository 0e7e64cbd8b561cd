"""The pytest plugin end to end (pytester): collection, pass, fail, errors, summary, results."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase.io import write

from conftest import rattled_cubes

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MACE checkpoint, structures labelled by it (plus noise), and a suite."""
    from harness.models.mace.model import MaceModel, save_model
    from harness.models.mace.tiny import build_tiny_mace

    root = tmp_path_factory.mktemp("tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = build_tiny_mace(["Cr", "Sb", "Te"], seed=1, num_channels=8, max_L=0, r_max=4.0)
        save_model(module, root / "tiny.model")
        structures = rattled_cubes(12, seed=3)
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
    from harness.files import sha256_file

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
        [
            f"*{path}:7: check 'accuracy' (accuracy) on model 'candidate' FAILED*",
            "*energy_rmse_meV_per_atom = *<= 0.0001*FAIL*",
        ]
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
    from harness.files import sha256_file

    _write_suite(tiny_suite_dir, SUITE.format(e_max=50, sha="{sha}"), name="override.suite.yaml")
    model = tiny_suite_dir / "tiny.model"
    path = tiny_suite_dir / "override.suite.yaml"
    refused = pytester.runpytest(str(path), "-p", "no:cacheprovider", f"--harness-candidate={model}")
    refused.assert_outcomes(failed=2)
    refused.stdout.fnmatch_lines(["*no sha256 pin given*refusing to unpickle*"])
    pinned = pytester.runpytest(
        str(path), "-p", "no:cacheprovider", f"--harness-candidate={model}",
        f"--harness-candidate-sha256={sha256_file(model)}",
    )
    pinned.assert_outcomes(passed=2)


def test_candidate_is_checked_once_before_collection(pytester: pytest.Pytester, tiny_suite_dir: Path) -> None:
    """A missing or mis-pinned --harness-candidate is one usage error for the session, not one per suite file."""
    folder = tiny_suite_dir / "two"
    folder.mkdir(exist_ok=True)
    for name in ("a.suite.yaml", "b.suite.yaml"):
        (folder / name).write_text(_absolute_suite(tiny_suite_dir))
    missing = pytester.runpytest(str(folder), "-p", "no:cacheprovider", "--harness-candidate=/nonexistent.model")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    text = missing.stdout.str() + missing.stderr.str()
    assert text.count("--harness-candidate /nonexistent.model: no such file") == 1, text
    assert "collected" not in missing.stdout.str()  # refused before any suite file was read
    model = tiny_suite_dir / "tiny.model"
    wrong = pytester.runpytest(
        str(folder), "-p", "no:cacheprovider", f"--harness-candidate={model}", f"--harness-candidate-sha256={'0' * 64}"
    )
    assert wrong.ret == pytest.ExitCode.USAGE_ERROR
    text = wrong.stdout.str() + wrong.stderr.str()
    assert text.count(f"sha256 {_sha(model)} does not match the pin {'0' * 64}") == 1, text
    folder_as_candidate = pytester.runpytest(str(folder), "-p", "no:cacheprovider", f"--harness-candidate={folder}")
    assert folder_as_candidate.ret == pytest.ExitCode.USAGE_ERROR
    text = folder_as_candidate.stdout.str() + folder_as_candidate.stderr.str()
    assert f"--harness-candidate {folder}: not a file" in text


def _absolute_suite(tiny_suite_dir: Path) -> str:
    """The passing suite with absolute paths, to be written anywhere."""
    return (
        SUITE.format(e_max=50, sha="{sha}")
        .replace("checkpoint: tiny.model", f"checkpoint: {tiny_suite_dir / 'tiny.model'}")
        .replace("{sha}", _sha(tiny_suite_dir / "tiny.model"))
        .replace("structures.extxyz", str(tiny_suite_dir / "structures.extxyz"))
    )


def _sha(path: Path) -> str:
    from harness.files import sha256_file

    return sha256_file(path)


def test_old_option_names_work_with_one_deprecation_warning(pytester: pytest.Pytester, tiny_suite_dir: Path) -> None:
    path = _write_suite(tiny_suite_dir, SUITE.format(e_max=50, sha="{sha}"), name="aliases.suite.yaml")
    model = tiny_suite_dir / "tiny.model"
    result = pytester.runpytest(
        str(path), "-p", "no:cacheprovider", "--harness-no-cache", f"--candidate={model}",
        f"--candidate-sha256={_sha(model)}", "--allow-unpinned", "--device=cpu", "--dtype=float64", "--batch-size=5",
    )
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    for old in ("--candidate", "--candidate-sha256", "--allow-unpinned", "--device", "--dtype", "--batch-size"):
        new = "--harness-" + old[2:]
        assert out.count(f"mlff-harness: {old} is deprecated and will be removed; use {new}") == 1, (old, out)
    # the alias's value is used: a bad batch size through the old name is refused as through the new one
    bad = pytester.runpytest(str(path), "-p", "no:cacheprovider", "--batch-size=0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--harness-batch-size must be a positive integer" in bad.stdout.str() + bad.stderr.str()
    clean = pytester.runpytest(str(path), "-p", "no:cacheprovider", "--harness-no-cache", "--harness-device=cpu")
    clean.assert_outcomes(passed=2)
    assert "deprecated" not in clean.stdout.str()


def test_a_projects_own_device_option_does_not_clash(pytester: pytest.Pytester, tiny_suite_dir: Path) -> None:
    """Installing the plugin must not break a project whose conftest registers --device itself."""
    path = pytester.path / "own_device.suite.yaml"
    path.write_text(_absolute_suite(tiny_suite_dir))
    pytester.makeconftest(
        """
        def pytest_addoption(parser):
            parser.addoption("--device", default="tpu", help="the project's own option")

        def pytest_configure(config):
            print("project device:", config.getoption("--device"))
        """
    )
    result = pytester.runpytest(str(path), "-p", "no:cacheprovider", "--harness-no-cache", "--device=gpu0", "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*project device: gpu0*"])
    assert "deprecated" not in result.stdout.str()  # --device was the project's, not our alias


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
