"""`mlff-harness init` and `calibrate` on tiny real MACE models and a small real extxyz file.

Models: `a` labels the structures (plus noise) and is good, `a_twin` is `a` with
weights nudged by 1e-3 of their spread (a second good model), `a_randomised` is
`a` with its last interaction, product and readout re-drawn (Adebayo et al.'s
layer randomisation) and `b` an independent random model (both must fail).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from harness.cli.main import main
from harness.errors import DataError, SuiteError
from harness.files import sha256_file
from harness.own_system.calibrate import Calibration, Row, Value, _propose_all, propose
from harness.own_system.init_suite import PLACEHOLDER, detect_keys, init_suite, suite_stem
from harness.suite.bounds import Bound
from harness.suite.loader import load_suite

from tiny_run import build_tiny_suite


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from harness.models.mace.model import MaceModel, cascade_blocks, save_model
    from harness.models.randomise import randomised_copy

    root = tmp_path_factory.mktemp("own-system")
    build_tiny_suite(root)
    a = MaceModel.load(root / "a.model")
    twin = copy.deepcopy(a.module)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in twin.parameters():
            if p.numel() > 1:
                p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 1e-3 * float(p.detach().std()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_model(twin, root / "a_twin.model")
        save_model(randomised_copy(a.module, cascade_blocks(a.module)[:3], seed=7), root / "a_randomised.model")
    return root


def _without_shap(suite: Path) -> None:
    """Drop the shap_classes check: on 12 structures of a tiny model no surrogate is evidence (R^2 < 0)."""
    text = suite.read_text()
    suite.write_text(text[: text.index("  - shap_classes:")])


# ------------------------------------------------------------------------------- init


def test_suite_stem() -> None:
    assert suite_stem(Path("data/train.extxyz.gz")) == "train"
    assert suite_stem(Path("frames.xyz")) == "frames"


def _frame(**labels: object) -> Atoms:
    atoms = Atoms("CuAu", positions=[[0, 0, 0], [1.3, 1.3, 0]], cell=np.eye(3) * 4, pbc=True)
    for key, value in labels.items():
        if np.ndim(value) == 2:
            atoms.arrays[key] = np.asarray(value)
        else:
            atoms.info[key] = value
    return atoms


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"REF_energy": -1.0, "REF_forces": np.zeros((2, 3))}, ("REF_energy", "REF_forces")),
        ({"dft_energy": -1.0, "dft_forces": np.zeros((2, 3))}, ("dft_energy", "dft_forces")),
        # a file with both: the REF_ names come first in the documented order
        ({"REF_energy": -1.0, "dft_energy": -2.0, "REF_forces": np.zeros((2, 3))}, ("REF_energy", "REF_forces")),
    ],
)
def test_detect_keys(tmp_path: Path, labels: dict, expected: tuple[str, str]) -> None:
    path = tmp_path / "f.extxyz"
    write(path, [_frame(**labels)], format="extxyz")
    assert detect_keys(path) == expected


def test_detect_plain_ase_labels(tmp_path: Path) -> None:
    """`energy` and `forces` written by ASE come back as calculator results, not info/arrays."""
    atoms = _frame()
    atoms.calc = SinglePointCalculator(atoms, energy=-3.0, forces=np.ones((2, 3)))
    path = tmp_path / "f.extxyz"
    write(path, [atoms], format="extxyz")
    assert detect_keys(path) == ("energy", "forces")


def test_unknown_label_names_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "f.extxyz"
    write(path, [_frame(my_E=-1.0, my_F=np.zeros((2, 3)))], format="extxyz")
    with pytest.raises(DataError) as err:
        detect_keys(path)
    message = str(err.value)
    assert "my_E (atoms.info)" in message and "--energy-key" in message
    assert detect_keys(path, "my_E", "my_F") == ("my_E", "my_F")
    with pytest.raises(DataError, match="no forces label 'nope'.*my_F \\(atoms.arrays\\)"):
        detect_keys(path, "my_E", "nope")


def test_init_writes_a_valid_pinned_suite(system: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = system / "suites" / "mine"
    assert main(["init", "--structures", str(system / "structures.extxyz"), "--checkpoint", str(system / "a.model"),
                 "--focus", "Cr", "--out", str(out), "--checkpoint-name", "release 1"]) == 0
    suite_path = out / "structures.suite.yaml"
    loaded = load_suite(suite_path)
    suite = loaded.suite
    assert suite.reference.structures == "../../structures.extxyz"  # relative to the suite file
    assert suite.reference.sha256 == sha256_file(system / "structures.extxyz")
    assert suite.models.candidate.checkpoint == "../../a.model"
    assert suite.models.candidate.sha256 == sha256_file(system / "a.model")
    assert suite.models.candidate.description == "release 1"
    assert (suite.reference.energy_key, suite.reference.forces_key) == ("REF_energy", "REF_forces")
    assert suite.descriptor.soap.species == ["Cr", "Sb", "Te"]
    assert suite.surrogate.target == "signed"
    assert [c.kind for c in suite.checks] == ["accuracy", "gradcam_locus", "shap_classes"]
    assert suite.checks[1].element == "Cr" and suite.checks[2].involving == "Cr"
    assert sum(line.endswith(PLACEHOLDER) for line in suite_path.read_text().splitlines()) == 6
    capsys.readouterr()
    assert main(["validate", str(suite_path)]) == 0
    assert "6 placeholder thresholds" in capsys.readouterr().out
    # never overwritten by accident
    before = suite_path.read_bytes()
    assert main(["init", "--structures", str(system / "structures.extxyz"), "--checkpoint", str(system / "b.model"),
                 "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and suite_path.read_bytes() == before
    assert main(["init", "--structures", str(system / "structures.extxyz"), "--checkpoint", str(system / "b.model"),
                 "--out", str(out), "--force"]) == 0
    assert load_suite(suite_path).suite.models.candidate.sha256 == sha256_file(system / "b.model")


def test_init_refuses_what_cannot_work(system: Path, tmp_path: Path) -> None:
    structures, model = system / "structures.extxyz", system / "a.model"
    with pytest.raises(DataError, match="--focus Fe: no such atom"):
        init_suite(structures, model, out_dir=tmp_path, focus=["Fe"])
    with pytest.raises(DataError, match="Xx"):
        init_suite(structures, model, out_dir=tmp_path, focus=["Xx"])
    frames = read(structures, index=":")
    frames[0].symbols[0] = "Au"  # an element the model was not trained on
    other = tmp_path / "other.extxyz"
    write(other, frames, format="extxyz")
    with pytest.raises(Exception, match="does not know Au"):
        init_suite(other, model, out_dir=tmp_path)
    with pytest.raises(SuiteError, match="output folder is a file"):
        init_suite(structures, model, out_dir=structures)
    assert not list(tmp_path.glob("*.suite.yaml"))


# --------------------------------------------------------------------------- calibrate


def test_propose_rule() -> None:
    # worst good 2.0 widened by 20 % to 2.4; must-fail 3.0 and 10.0 beyond it are caught, 1.5 is not
    p = propose(["max"], [1.0, 2.0], {"x": 3.0, "y": 10.0, "z": 1.5}, 0.2)
    assert p.bound == Bound(max=2.4) and p.catches == ("x", "y") and not p.capped
    # a must-fail model beyond the worst good value, but nearer than the margin, caps the bound at the midpoint
    p = propose(["max"], [2.0], {"x": 2.3}, 0.2)
    assert p.capped == ("max",) and 2.0 < p.bound.max < 2.3 and p.catches == ("x",)
    # one nearer than twice the minimum margin (5 % of 2.0, each side) is too close: not caught, not capped against
    p = propose(["max"], [2.0], {"x": 2.1, "y": 3.0}, 0.2)
    assert p.too_close == ("x",) and p.catches == ("y",) and p.bound == Bound(max=2.4) and not p.capped
    assert propose(["max"], [2.0], {"x": 2.1}, 0.2, min_margin=0.0).catches == ("x",)
    # a min bound mirrors it; an undefined must-fail value fails its bound, so it is caught
    p = propose(["min"], [0.5, 0.9], {"x": 0.1, "y": None}, 0.2)
    assert p.bound == Bound(min=0.4) and p.catches == ("x", "y")
    # two-sided
    p = propose(["min", "max"], [0.5, 0.9], {"low": 0.1, "high": 2.0, "inside": 0.7}, 0.2)
    assert p.bound == Bound(min=0.4, max=1.08) and p.catches == ("low", "high")


def test_undefined_values_are_reported_not_crashes() -> None:
    cal = Calibration(Path("s.yaml"), 0.2, {"g": {"role": "good", "path": "g", "sha256": ""},
                                           "f": {"role": "must-fail", "path": "f", "sha256": ""}}, [], {}, [], [])
    undefined_good = Row(0, "locus", "gradcam_locus", "mean_ratio_to_host", Bound(min=0.0),
                         good={"g": Value(None, "undefined: no atom of the element")}, must_fail={"f": Value(0.1)})
    undefined_bad = Row(1, "acc", "accuracy", "energy_rmse_meV_per_atom", Bound(max=1.0),
                        good={"g": Value(1.0)}, must_fail={"f": Value(None, "undefined: empty group")})
    cal.rows += [undefined_good, undefined_bad]
    _propose_all(cal, 0.2, set())
    assert undefined_good.proposal is None and "undefined for good model(s) g" in undefined_good.problem
    assert undefined_bad.proposal.catches == ("f",)  # an undefined gated value fails its check
    assert cal.caught_by("f") == ["acc"]


def _calibrate_args(system: Path, suite: Path, *bad: str, extra: tuple[str, ...] = ()) -> list[str]:
    args = ["calibrate", str(suite), "--good", str(system / "a.model"), "--good", str(system / "a_twin.model"),
            "--cache", str(system / "cache")]
    for name in bad:
        args += ["--must-fail", str(system / name)]
    return args + list(extra)


def test_calibrate_separates_good_from_randomised(system: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = system / "separable"
    init_suite(system / "structures.extxyz", system / "a.model", out_dir=out, focus=["Cr"])
    suite = out / "structures.suite.yaml"
    _without_shap(suite)
    status = main(_calibrate_args(system, suite, "a_randomised.model", "b.model", extra=("--write-suite",)))
    printed = capsys.readouterr()
    assert status == 0, printed.err
    record = json.loads((out / "structures.calibration.json").read_text())
    assert record["accepted"]
    assert "| a_randomised | accuracy, locus-Cr |" in (out / "structures.calibration.md").read_text()
    by_metric = {(m["check"], m["metric"]): m for m in record["metrics"]}
    energy = by_metric[("accuracy", "energy_rmse_meV_per_atom")]
    good = max(v["value"] for v in energy["good"].values())
    bad = min(v["value"] for v in energy["must_fail"].values())
    assert good < energy["proposed"]["max"] < bad  # a bound between the good and the randomised model
    ratio = by_metric[("locus-Cr", "mean_ratio_to_host")]
    assert ratio["must_fail"]["a_randomised"]["value"] < ratio["proposed"]["min"] <= min(
        v["value"] for v in ratio["good"].values()
    )
    # the written suite validates, keeps its pins, lost its placeholders and gates the same way
    calibrated = load_suite(suite)
    assert not any(line.endswith(PLACEHOLDER) for line in suite.read_text().splitlines())
    assert "UNCALIBRATED" not in suite.read_text() and "# calibrated: worst good" in suite.read_text()
    assert calibrated.suite.checks[0].energy_rmse_meV_per_atom.max == energy["proposed"]["max"]
    assert main(["validate", str(suite)]) == 0
    # round trip: calibrating the calibrated suite proposes the same thresholds
    assert main(_calibrate_args(system, suite, "a_randomised.model", "b.model")) == 0
    again = json.loads((out / "structures.calibration.json").read_text())
    assert [m["proposed"] for m in again["metrics"]] == [m["proposed"] for m in record["metrics"]]
    from harness.gate.checks import run_check
    from harness.gate.session import RunOptions, SuiteRun

    for model, passes in (("a.model", True), ("a_randomised.model", False)):
        path = system / model
        run = SuiteRun(calibrated, RunOptions(candidate=path, candidate_sha256=sha256_file(path),
                                              cache_dir=system / "cache", progress=False))
        assert all(run_check(c, "candidate", run).passed for c in calibrated.suite.checks) is passes


def test_calibrate_refuses_what_it_cannot_separate(system: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = system / "inseparable"
    init_suite(system / "structures.extxyz", system / "a.model", out_dir=out, focus=["Cr"])
    suite = out / "structures.suite.yaml"
    _without_shap(suite)
    shutil.copy(system / "a.model", system / "a_copy.model")  # a "must-fail" model identical to a good one
    before = suite.read_bytes()
    assert main(_calibrate_args(system, suite, "a_copy.model", extra=("--write-suite",))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "check 'accuracy' cannot separate the good from the must-fail models" in err[0]
    assert any("check 'locus-Cr' cannot separate" in line for line in err)
    assert any("must-fail model a_copy" in line and "caught by no check" in line for line in err)
    assert suite.read_bytes() == before  # nothing written on refusal
    assert not json.loads((out / "structures.calibration.json").read_text())["accepted"]
    # --guard keeps a check that catches nothing, but the uncaught model is still refused
    assert main(_calibrate_args(system, suite, "a_copy.model", extra=("--guard", "accuracy"))) == 1
    err = capsys.readouterr().err
    assert "check 'accuracy'" not in err and "caught by no check" in err


def test_calibrate_input_errors(system: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "missing.suite.yaml"
    assert main(_calibrate_args(system, suite, "b.model")) == 2
    assert main(["calibrate", str(system / "tiny.suite.yaml"), "--good", str(tmp_path), "--must-fail",
                 str(system / "b.model")]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_measure_takes_focus_elements_from_the_command_line(system: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    args = ["measure", str(system / "tiny.suite.yaml"), "--cache", str(system / "cache"), "-o", str(out)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--element", "Sb", "Te"]) == 0
        assert json.loads(out.read_text())["focus_elements"] == ["Sb", "Te"]
        assert main(args) == 0  # default: the elements the suite's checks name
    assert json.loads(out.read_text())["focus_elements"] == ["Cr"]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main([*args, "--element", "Xx"]) == 2
    assert "Xx" in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1


def test_write_suite_rewrites_each_bound_in_place(tmp_path: Path) -> None:
    """Two elements' bounds on one line, an interval bound's extra keys and tiny numbers survive the rewrite."""
    from harness.own_system.calibrate import Proposal
    from harness.own_system.calibration_report import write_suite

    (tmp_path / "s.extxyz").write_text("")
    (tmp_path / "m.model").write_text("")
    suite = tmp_path / "x.suite.yaml"
    suite.write_text(
        "suite: x\n"
        "reference: {structures: s.extxyz}\n"
        "models: {candidate: {checkpoint: m.model}}\n"
        "checks:\n"
        "  - accuracy:\n"
        "      per_element: {Au: {force_rmse_meV_per_A: {max: 1.0e+6}}, Cu: {force_rmse_meV_per_A: {max: 1.0e+6}}}"
        "    # calibrate\n"
        "  - attribution_faithfulness:\n"
        "      curve_area: {min: -1.0, on: ci_low}    # calibrate\n"
    )
    loaded = load_suite(suite)

    def row(index: int, kind: str, metric: str, bound: Bound, worst: float) -> Row:
        r = Row(index, kind, kind, metric, bound)
        r.proposal = Proposal(bound, {"x": worst}, {"x": 0.2}, (), ("bad",))
        return r

    rows = [
        row(0, "accuracy", "per_element.Au.force_rmse_meV_per_A", Bound(max=80.0), 70.0),
        row(0, "accuracy", "per_element.Cu.force_rmse_meV_per_A", Bound(max=1e-5), 9e-6),
        row(1, "attribution_faithfulness", "curve_area", Bound(min=0.25), 0.3),
    ]
    cal = Calibration(suite, 0.2, {}, rows, {}, [], [])
    write_suite(cal, loaded, suite, record="x.calibration.md")
    written = load_suite(suite).suite
    per_element = written.checks[0].per_element
    assert per_element["Au"].force_rmse_meV_per_A.max == 80.0
    assert per_element["Cu"].force_rmse_meV_per_A.max == 1e-5
    assert written.checks[1].curve_area.min == 0.25 and written.checks[1].curve_area.on == "ci_low"
    assert "1.0e-05" in suite.read_text() and suite.read_text().count("# calibrated: worst good") == 3


def test_the_three_commands_of_the_readme(system: Path, tmp_path: Path) -> None:
    """init, calibrate --write-suite, pytest: the good candidate passes, the randomised copy fails."""
    import subprocess
    import sys

    out = tmp_path / "suites" / "mine"
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "init", "--structures", str(system / "structures.extxyz"),
         "--checkpoint", str(system / "a.model"), "--focus", "Cr", "--out", str(out), "--name", "mine"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    suite = out / "mine.suite.yaml"
    _without_shap(suite)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(_calibrate_args(system, suite, "a_randomised.model", "b.model", extra=("--write-suite",))) == 0

    def gate(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", str(out), "-q", "-p", "no:cacheprovider", f"--rootdir={tmp_path}",
             f"--harness-cache={system / 'cache'}", *extra],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )

    passed = gate()
    assert passed.returncode == 0, passed.stdout[-3000:]
    bad = system / "a_randomised.model"
    failed = gate("--harness-candidate", str(bad), "--harness-candidate-sha256", sha256_file(bad))
    assert failed.returncode == 1, failed.stdout[-3000:]
    assert "FAIL" in failed.stdout
