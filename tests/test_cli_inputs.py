"""Every `mlff-harness` command on bad input: exit 2, one line naming the file, never a traceback.

Named cases (not JSON, wrong format tag, schema-invalid, truncated, empty, a
directory, a path under a file, missing, not UTF-8, NaN, out-of-range numbers)
for every command that reads a results document or a suite, then hypothesis
feeds each command mutated copies of a shipped results document and of the
demo suite (keys dropped, types changed, bytes truncated, NaN and huge numbers
inserted) and asserts the exit code is 0, 1 or 2 and no traceback is printed.

Unreadable permissions cannot be simulated with chmod as root (root reads a
mode-000 file); a path whose parent is a file fails the same way (ENOTDIR) and
stands in for it.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import cli_in_process
from demo_suite import DEMO, write_placeholders

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reference_data" / "examples" / "history" / "epoch-000.json"
OTHER = ROOT / "reference_data" / "examples" / "history" / "epoch-001.json"
BASE_RESULTS: dict[str, Any] = json.loads(RESULTS.read_text())
BASE_SUITE: dict[str, Any] = yaml.safe_load(DEMO)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """main() in process: (exit code, stdout, stderr); argparse's own exits included."""
    return cli_in_process(args)


def assert_clean(code: int, out: str, err: str) -> None:
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in out + err, err
    assert "internal error" not in err, err


def assert_refused(code: int, err: str, path: Path | str) -> None:
    """Exit 2 with exactly one line on stderr, naming the file."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert str(path) in lines[0], err


# -------------------------------------------------------------------- bad files, by name


def _bad_json_files(folder: Path) -> dict[str, Path]:
    text = RESULTS.read_text()
    cases: dict[str, bytes | None] = {
        "not JSON": b"format: yaml, not json\n",
        "wrong format tag": json.dumps({**BASE_RESULTS, "format": "mlff-harness-results/0"}).encode(),
        "schema-invalid": json.dumps({**BASE_RESULTS, "outcomes": "x"}).encode(),
        "truncated": text[: len(text) // 2].encode(),
        "empty": b"",
        "blank": b"  \n",
        "not UTF-8": b'{"format": "\xff\xfe"}',
        "NaN": text.replace('"value": ', '"value": NaN, "was": ', 1).encode(),
        "huge number": text.replace('"value": ', '"value": 1e999, "was": ', 1).encode(),
        "a list": b"[1, 2]",
        "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    }
    files: dict[str, Path] = {}
    for name, data in cases.items():
        path = folder / (name.replace(" ", "_") + ".json")
        path.write_bytes(data or b"")
        files[name] = path
    from ase import Atoms
    from ase.io import write

    frame = Atoms("Cu2", positions=[[0, 0, 0], [1.8, 1.8, 0]], cell=[3.6] * 3, pbc=True)
    frame.info["REF_energy"] = -7.0
    frame.arrays["REF_forces"] = np.array([[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]])
    write(folder / "good.extxyz", [frame] * 3, format="extxyz")
    files["good structures"] = folder / "good.extxyz"
    (folder / "a_directory.json").mkdir()
    files["a directory"] = folder / "a_directory.json"
    files["missing"] = folder / "missing.json"
    files["parent is a file"] = folder / "empty.json" / "x.json"
    return files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _bad_json_files(tmp_path_factory.mktemp("bad"))


CASES = [
    "not JSON", "wrong format tag", "schema-invalid", "truncated", "empty", "blank", "not UTF-8", "NaN",
    "huge number", "a list", "deep nesting", "a directory", "missing", "parent is a file",
]


@pytest.mark.parametrize("case", CASES)
def test_results_commands_refuse_bad_files(case: str, bad_files: dict[str, Path], tmp_path: Path) -> None:
    bad = bad_files[case]
    write_placeholders(tmp_path / "demo")
    (tmp_path / "demo" / "demo.suite.yaml").write_text(DEMO)
    for args in (
        ["compare", str(RESULTS), str(bad)],
        ["report", str(bad), "-o", str(tmp_path / "r.html")],
        ["spread", str(tmp_path / "demo" / "demo.suite.yaml"), "--results", str(bad), "--cache", ""],
    ):
        code, out, err = run_cli(args)
        assert_clean(code, out, err)
        assert_refused(code, err, bad)
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("case", CASES)
def test_suite_commands_refuse_bad_files(case: str, bad_files: dict[str, Path], tmp_path: Path) -> None:
    bad = bad_files[case]
    model = str(tmp_path / "m.model")
    Path(model).write_bytes(b"not a model")
    for args in (
        ["validate", str(bad)],
        ["measure", str(bad), "--cache", ""],
        ["calibrate", str(bad), "--good", model, "--must-fail", model, "--cache", ""],
        ["sweep", str(bad), model, "-o", str(tmp_path / "out"), "--allow-unpinned", "--cache", ""],
        ["spread", str(bad), "--cache", ""],
    ):
        code, out, err = run_cli(args)
        assert_clean(code, out, err)
        if args[0] == "validate":
            assert code == 2 and str(bad) in err and len(err.strip().splitlines()) == 1, err
        else:
            assert_refused(code, err, bad)


@pytest.mark.parametrize("case", ["empty", "a directory", "missing", "parent is a file", "not JSON"])
def test_file_commands_refuse_bad_files(case: str, bad_files: dict[str, Path], tmp_path: Path) -> None:
    bad = bad_files[case]
    for args in (
        ["convert", str(bad), str(tmp_path / "x.safetensors"), "--allow-unpinned"],
        ["init", "--structures", str(bad), "--checkpoint", str(RESULTS), "--out", str(tmp_path)],
        ["init", "--structures", str(bad_files["good structures"]), "--checkpoint", str(bad), "--out", str(tmp_path)],
        ["history", str(bad)],
        ["run", str(bad)] if case in ("missing", "parent is a file") else ["history", str(bad)],
    ):
        code, out, err = run_cli(args)
        assert_clean(code, out, err)
        assert_refused(code, err, bad)
    assert not list(tmp_path.iterdir())


def test_outputs_that_cannot_be_written(bad_files: dict[str, Path], tmp_path: Path) -> None:
    for args, path in (
        (["schema", "-o", str(tmp_path)], tmp_path),
        (["schema", "-o", str(bad_files["parent is a file"])], bad_files["parent is a file"]),
        (["report", str(RESULTS), "-o", str(tmp_path)], tmp_path),
        (["history", str(RESULTS.parent), "-o", str(bad_files["parent is a file"])], bad_files["parent is a file"]),
    ):
        code, out, err = run_cli(args)
        assert_clean(code, out, err)
        assert_refused(code, err, path)


def test_outputs_in_new_folders_are_written(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "schema.json"
    assert run_cli(["schema", "-o", str(target)])[0] == 0
    assert json.loads(target.read_text())["title"] == "mlff-harness suite"


def test_valid_inputs_still_pass(tmp_path: Path) -> None:
    assert run_cli(["compare", str(RESULTS), str(OTHER)])[0] in (0, 1)
    code, _, err = run_cli(["report", str(RESULTS), "-o", str(tmp_path / "r.html")])
    assert code == 0, err
    write_placeholders(tmp_path)
    (tmp_path / "demo.suite.yaml").write_text(DEMO)
    assert run_cli(["validate", str(tmp_path / "demo.suite.yaml")])[0] == 0


@pytest.mark.parametrize("command", [["compare", str(RESULTS)], ["validate"], ["calibrate", "s.yaml"], ["init"]])
def test_argument_errors_exit_2(command: list[str]) -> None:
    code, out, err = run_cli(command)
    assert code == 2 and "Traceback" not in err


def test_every_command_is_bound_by_set_defaults_and_writes_through_dash_o() -> None:
    """argparse sub-commands name their function; every command that writes a file takes -o/--output."""
    from harness.cli.main import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) >= {"schema", "report", "history", "validate", "run", "compare", "measure", "convert",
                                "sweep", "init", "calibrate", "spread"}
    for name, command in sub.choices.items():
        assert callable(command.get_default("func")), name
    for name in ("schema", "report", "history", "measure", "spread", "sweep", "calibrate"):
        assert {"-o", "--output"} <= set(sub.choices[name]._option_string_actions), name


def test_convert_names_its_output_once(tmp_path: Path) -> None:
    """convert takes the file it writes as OUTPUT or -o/--output: neither, or two different ones, is bad input."""
    source = str(RESULTS)  # never read: the output is refused first
    for args in (["convert", source, "--allow-unpinned"],
                 ["convert", source, str(tmp_path / "a.safetensors"), "-o", str(tmp_path / "b.safetensors"),
                  "--allow-unpinned"]):
        code, _, err = run_cli(args)
        assert code == 2 and "give the safe checkpoint to write once" in err, err
    assert not list(tmp_path.iterdir())
    from harness.models.mace.model import save_model
    from harness.models.mace.tiny import build_tiny_mace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_tiny_mace(["Cr", "Sb", "Te"], seed=1, num_channels=4, max_L=0, r_max=4.0)
        save_model(model, tmp_path / "t.model")
    code, out, err = run_cli(["convert", str(tmp_path / "t.model"), "-o", str(tmp_path / "t.safetensors"),
                              "--allow-unpinned"])
    assert code == 0, err
    assert "verified pickle-free" in out and (tmp_path / "t.safetensors").stat().st_size > 0


def test_compare_with_one_file_is_bad_input() -> None:
    code, out, err = run_cli(["compare", str(RESULTS)])
    assert code == 2 and "compare needs at least two results files" in err


def test_old_out_option_still_writes_with_a_warning(tmp_path: Path) -> None:
    """--out is the hidden, deprecated spelling of -o/--output (here on report; measure and spread likewise)."""
    target = tmp_path / "r.html"
    code, _, err = run_cli(["report", str(RESULTS), "--out", str(target)])
    assert code == 0, err
    assert target.read_text().startswith("<!DOCTYPE html>") or "<html" in target.read_text()[:500]
    assert "--out is deprecated; use -o/--output" in err


def test_subprocess_bad_inputs(bad_files: dict[str, Path], tmp_path: Path) -> None:
    """As a user runs it: the installed entry point, a real process, one line on stderr."""
    for args, bad in (
        (["compare", str(RESULTS), str(bad_files["schema-invalid"])], bad_files["schema-invalid"]),
        (["validate", str(bad_files["truncated"])], bad_files["truncated"]),
        (["report", str(bad_files["a directory"]), "-o", str(tmp_path / "r.html")], bad_files["a directory"]),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli.main", *args], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert str(bad) in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


# ------------------------------------------------------------------------- mutations


JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([1e308, -1e308, 10**400, "NaN", "nan", "Infinity", "", "x" * 50, [], {}, [None], {"a": 1}]),
    st.text(max_size=8),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with 1-3 nodes dropped or replaced by junk."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JUNK)
    return doc


def _bytes(draw: st.DrawFn, text: str) -> bytes:
    """The text, or its bytes truncated, or with a NaN / huge number spliced in."""
    data = text.encode()
    how = draw(st.sampled_from(["whole", "truncate", "splice"]))
    if how == "truncate":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if how == "splice":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from([b"NaN", b"1e999", b"-Infinity", b"\xff", b"{", b"]"])) + data[at:]
    return data


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.data())
def test_results_commands_never_traceback(data: st.DataObject) -> None:
    document = data.draw(mutated(BASE_RESULTS))
    raw = _bytes(data.draw, json.dumps(document, default=str))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.json"
        path.write_bytes(raw)
        commands = [["compare", str(RESULTS), str(path)], ["history", folder]]
        if data.draw(st.integers(0, 9)) == 0:  # the HTML report draws plots: a tenth of the examples
            commands.append(["report", str(path), "-o", str(Path(folder) / "r.html")])
        for args in commands:
            assert_clean(*run_cli(args))


@FUZZ
@given(data=st.data())
def test_suite_commands_never_traceback(data: st.DataObject) -> None:
    suite = data.draw(mutated(BASE_SUITE))
    raw = _bytes(data.draw, yaml.safe_dump(suite, sort_keys=False))
    with tempfile.TemporaryDirectory() as folder:
        write_placeholders(Path(folder))
        path = Path(folder) / "demo.suite.yaml"
        path.write_bytes(raw)
        model = str(Path(folder) / "m.model")
        for args in (
            ["validate", str(path)],
            ["measure", str(path), "--cache", ""],
            ["calibrate", str(path), "--good", model, "--must-fail", model, "--cache", ""],
        ):
            assert_clean(*run_cli(args))


def _extxyz_text() -> str:
    from ase import Atoms
    from ase.io import write

    frame = Atoms("Cu2", positions=[[0, 0, 0], [1.8, 1.8, 0]], cell=[3.6] * 3, pbc=True)
    frame.info["REF_energy"] = -7.0
    frame.arrays["REF_forces"] = np.array([[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]])
    buffer = io.StringIO()
    write(buffer, [frame] * 3, format="extxyz")
    return buffer.getvalue()


EXTXYZ = _extxyz_text()


@FUZZ
@given(data=st.data())
def test_init_never_tracebacks_on_mutated_structures(data: st.DataObject) -> None:
    raw = _bytes(data.draw, EXTXYZ)
    with tempfile.TemporaryDirectory() as folder:
        structures, model = Path(folder) / "s.extxyz", Path(folder) / "m.model"
        structures.write_bytes(raw)
        model.write_bytes(b"not a model")
        assert_clean(*run_cli(["init", "--structures", str(structures), "--checkpoint", str(model), "--out", folder]))
