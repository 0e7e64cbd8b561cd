"""The atom_error_classes check end to end: a tiny real MACE model, its error a planted Cr-Cr term.

Reference labels are the tiny MACE model's own energies and forces minus an
exact Cr-Cr pair term (harness.explain.planted), so the model is "reference + term":
the check must fail naming the Cr-Cr pair and the distance of the term. With
labels that differ from the model by noise only, the surrogate explains
nothing and the check's if_unexplained policy decides.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from ase.io import write

from harness.explain.planted import PairTerm, plant_into_labels
from harness.gate.checks import run_check
from harness.gate.session import RunOptions, SuiteRun
from harness.suite.check_kinds import AtomErrorClassesCheck
from harness.suite.loader import load_suite

from planted import random_cells

# the labels get TERM added, so the model (labels - TERM) errs by +0.2 eV * Gaussian: a repulsive bump at r0
TERM = PairTerm("Cr", "Cr", eps_eV=-0.2, r0_A=3.5, sigma_A=0.35)

SUITE = """\
suite: tiny-atoms
reference: {{structures: {structures}}}
models:
  candidate: {{checkpoint: a.model, sha256: {sha}}}
settings: {{dtype: float64, batch_size: 16, seed: 0}}
descriptor: {{pair_shells: {{r_min_A: 2.0, r_max_A: 6.0, shell_width_A: 0.25}}}}
checks:
  - atom_error_classes:
      name: crcr-per-atom
      max_atoms: 600
      n_estimators: 60
      cv_folds: 3
      pair: [Cr, Cr]
      surrogate_cv_r2: {{min: 0.5}}
      pair_class_share: {{max: 0.5}}
      if_unexplained: fail
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.files import sha256_file
    from harness.models.mace.model import MaceModel, save_model
    from harness.models.mace.tiny import build_tiny_mace

    root = tmp_path_factory.mktemp("atoms")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = build_tiny_mace(["Cr", "Sb", "Te"], seed=1, num_channels=8, max_L=0, r_max=4.0)
    save_model(module, root / "a.model")
    cells = random_cells(60, seed=5, n_atoms=16, box_A=8.0, n_cr=(3, 5))
    out = MaceModel.from_module(module, name="a").evaluate(cells, batch_size=16)
    offsets = out.offsets
    rng = np.random.default_rng(0)
    for i, atoms in enumerate(cells):
        atoms.info["REF_energy"] = float(out.energies_eV[i])
        noise = rng.normal(0, 0.005, (len(atoms), 3))
        atoms.arrays["REF_forces"] = out.forces_eV_per_A[offsets[i] : offsets[i + 1]] + noise
    write(root / "noise.extxyz", cells, format="extxyz")
    write(root / "planted.extxyz", plant_into_labels(cells, TERM), format="extxyz")
    sha = sha256_file(root / "a.model")
    for name in ("noise", "planted"):
        (root / f"{name}.suite.yaml").write_text(SUITE.format(structures=f"{name}.extxyz", sha=sha))
    return root


def outcome(root: Path, name: str):
    loaded = load_suite(root / f"{name}.suite.yaml")
    check = loaded.suite.checks[0]
    assert isinstance(check, AtomErrorClassesCheck)
    return run_check(check, "candidate", SuiteRun(loaded, RunOptions(progress=False)))


def test_planted_pair_fails_the_check_by_name(tiny: Path) -> None:
    result = outcome(tiny, "planted")
    assert result.status == "fail"
    share = {m.metric: m for m in result.measurements}["pair_class_share"]
    assert share.value > 0.5 and not share.passed
    assert result.details["top_classes"][0]["class"] == "Cr-Cr"
    label = result.details["top_classes"][0]["label"]  # e.g. "Cr-Cr pairs at 3.25-3.75 A"
    lo, hi = (float(v) for v in label.split(" at ")[1].removesuffix(" A").split("-"))
    assert lo - 0.5 <= TERM.r0_A <= hi + 0.5, label
    assert "Cr-Cr pairs at" in (result.failure_reason or "")
    assert result.details["atoms_per_element"]["Cr"] > 0


def test_noise_only_is_unexplained_and_judges_no_class(tiny: Path) -> None:
    result = outcome(tiny, "noise")
    assert result.unexplained is not None and "no feature class is judged" in result.unexplained
    assert result.status == "fail"  # the suite's if_unexplained: fail
    assert not any(m.evaluated for m in result.measurements if m.metric != "surrogate_cv_r2")


PAIR_FORCE_SUITE = """\
suite: tiny-pair-force
reference: {{structures: {structures}}}
models:
  candidate: {{checkpoint: a.model, sha256: {sha}}}
settings: {{dtype: float64, batch_size: 16, seed: 0}}
checks:
  - pair_force_bias:
      name: crcr-force
      pair: [Cr, Cr]
      r_min_A: 2.5
      r_max_A: 5.0
      bias_meV_per_A: {{min: -10.0}}
"""


def test_pair_force_bias_names_pair_distance_and_sense(tiny: Path) -> None:
    from harness.files import sha256_file

    # the model errs by a bump +0.2 eV * Gaussian at r0 = 3.5 A: below r0 its energy rises with r, so it
    # pulls Cr-Cr pairs together (too attractive, c > 0); beyond r0 it pushes them apart (c < 0)
    results = {}
    for name in ("planted", "noise"):
        path = tiny / f"{name}-force.suite.yaml"
        path.write_text(PAIR_FORCE_SUITE.format(structures=f"{name}.extxyz", sha=sha256_file(tiny / "a.model")))
        loaded = load_suite(path)
        results[name] = run_check(loaded.suite.checks[0], "candidate", SuiteRun(loaded, RunOptions(progress=False)))
    planted, noise = results["planted"], results["noise"]
    profile = {round(p["lo_A"], 2): p["mean_meV_per_A"] for p in planted.details["profile"]}
    assert profile[3.0] > 100 and profile[3.5] < -100, profile  # measured +339 and -370 meV/A
    assert abs({m.metric: m for m in noise.measurements}["bias_meV_per_A"].value) < 3.0  # noise 5 meV/A per component
    assert noise.status == "pass"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"pair_class_share": {"max": 0.5}}, "need 'pair'"),
        ({"descriptor": "soap", "group_by": "shell"}, "SOAP features have no 'shell' class"),
        ({"group_by": "angular"}, "pair-shell features have no 'angular' class"),
        ({"pair": ["Cr"], "pair_class_share": {"max": 0.5}}, "two elements"),
    ],
)
def test_atom_error_classes_settings_are_validated(body: dict, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        AtomErrorClassesCheck.model_validate({"kind": "atom_error_classes", **body})


def test_pair_shell_settings_are_validated() -> None:
    from pydantic import ValidationError

    from harness.suite.check_kinds import PairForceBiasCheck
    from harness.suite.schema import PairShells

    with pytest.raises(ValidationError, match="whole number of shells"):
        PairShells(r_min_A=2.0, r_max_A=6.1, shell_width_A=0.25)
    with pytest.raises(ValidationError, match="below r_max_A"):
        PairForceBiasCheck.model_validate(
            {"kind": "pair_force_bias", "pair": ["Cr", "Cr"], "r_min_A": 5.0, "r_max_A": 4.0}
        )
