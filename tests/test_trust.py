"""Trust: a checkpoint is never unpickled without its pin or an explicit option,
and the same suite run twice gives byte-identical results (apart from the time stamp)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from harness.errors import ModelError
from harness.files import sha256_file
from harness.models.mace.model import MaceModel

pytest_plugins = ["pytester"]


class _Planted:
    """Unpickling this object writes a file: the attack a checkpoint can carry."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (Path(self.target), "pwned"))


@pytest.fixture
def booby_trapped(tmp_path: Path) -> tuple[Path, Path]:
    target = tmp_path / "written-by-unpickling.txt"
    path = tmp_path / "evil.model"
    path.write_bytes(pickle.dumps(_Planted(str(target))))
    return path, target


def test_planted_pickle_is_not_loaded_without_pin_or_option(booby_trapped: tuple[Path, Path]) -> None:
    path, target = booby_trapped
    with pytest.raises(ModelError, match="no sha256 pin given"):
        MaceModel.load(path, allow_unpinned=False)
    assert not target.exists()
    with pytest.raises(ModelError, match="sha256 mismatch"):
        MaceModel.load(path, expected_sha256="0" * 64)
    assert not target.exists()


def test_planted_pickle_runs_when_pinned_which_is_why_pins_matter(booby_trapped: tuple[Path, Path]) -> None:
    # the control: once a user pins (trusts) the file, unpickling runs its code;
    # the harness then refuses the result because it is not a model
    path, target = booby_trapped
    with pytest.raises(ModelError):
        MaceModel.load(path, expected_sha256=sha256_file(path))
    assert target.read_text() == "pwned"


def test_gate_refuses_an_unpinned_candidate_before_unpickling(
    pytester: pytest.Pytester, booby_trapped: tuple[Path, Path]
) -> None:
    path, target = booby_trapped
    suite = Path(__file__).resolve().parents[1] / "suites" / "cr_sb2te3"
    result = pytester.runpytest_subprocess(
        str(suite), "-p", "no:cacheprovider", "--harness-no-cache", f"--harness-candidate={path}"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*no sha256 pin given*refusing to unpickle*"])
    assert not target.exists()


def test_same_suite_twice_gives_identical_results(pytester: pytest.Pytester, tiny_suite: Path) -> None:
    outputs = []
    for run in range(2):
        results = tiny_suite.parent / f"results{run}.json"
        result = pytester.runpytest(
            str(tiny_suite), "-p", "no:cacheprovider", "--harness-no-cache", f"--harness-results={results}"
        )
        result.assert_outcomes(passed=3)
        doc = json.loads(results.read_text())
        doc.pop("created")
        outputs.append(json.dumps(doc, sort_keys=True))
    assert outputs[0] == outputs[1]


def test_gate_gives_the_same_results_on_the_safe_checkpoint(pytester: pytest.Pytester, tiny_suite: Path) -> None:
    from harness.models.convert import convert_checkpoint

    folder = tiny_suite.parent
    pin = sha256_file(folder / "tiny.model")
    report = convert_checkpoint(folder / "tiny.model", folder / "tiny.safetensors", expected_sha256=pin)
    text = tiny_suite.read_text()
    assert f"tiny.model, sha256: {pin}" in text
    safe_suite = folder / "safe.suite.yaml"
    safe_suite.write_text(
        text.replace(f"tiny.model, sha256: {pin}", f"tiny.safetensors, sha256: {report.output_sha256}")
    )
    outcomes = []
    for suite in (tiny_suite, safe_suite):
        results = folder / f"{suite.name}.json"
        result = pytester.runpytest(
            str(suite), "-p", "no:cacheprovider", "--harness-no-cache", f"--harness-results={results}"
        )
        result.assert_outcomes(passed=3)
        outcomes.append(
            json.dumps(json.loads(results.read_text())["outcomes"], sort_keys=True).replace(suite.name, "SUITE")
        )
    assert outcomes[0] == outcomes[1]


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    """A tiny random model, 12 labelled structures, and a suite with a SHAP check."""
    import warnings

    import numpy as np
    from ase import Atoms
    from ase.io import write

    from harness.models.mace.model import save_model
    from harness.models.mace.tiny import build_tiny_mace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = build_tiny_mace(["Cr", "Sb", "Te"], seed=2, num_channels=8, max_L=0, r_max=4.0)
        save_model(module, tmp_path / "tiny.model")
        model = MaceModel.from_module(module, name="tiny")
        rng = np.random.default_rng(1)
        base = np.array([
            [0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
            [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5],
        ])
        structures = []
        for i in range(12):
            atoms = Atoms(["Cr"] + ["Sb"] * 3 + ["Te"] * 4, scaled_positions=base, cell=np.eye(3) * 6.1, pbc=True)
            atoms.rattle(0.08, seed=i)
            structures.append(atoms)
        out = model.evaluate(structures, batch_size=4)
    for i, atoms in enumerate(structures):
        atoms.info["REF_energy"] = float(out.energies_eV[i] + rng.normal(0, 0.02))
        atoms.arrays["REF_forces"] = out.forces_eV_per_A[8 * i : 8 * i + 8]
    write(tmp_path / "structures.extxyz", structures, format="extxyz")
    path = tmp_path / "det.suite.yaml"
    path.write_text(
        f"""suite: determinism
reference: {{structures: structures.extxyz}}
models:
  candidate: {{checkpoint: tiny.model, sha256: {sha256_file(tmp_path / 'tiny.model')}}}
surrogate: {{n_estimators: 20, max_depth: 2, cv_folds: 3}}
checks:
  - accuracy: {{energy_rmse_meV_per_atom: {{max: 100}}}}
  - gradcam_locus: {{element: Cr, relu_zero_fraction: {{max: 1.0}}}}
  - shap_classes: {{surrogate_cv_r2: {{min: -100}}}}
"""
    )
    return path
