"""Quiet runs (issue 14, item 7): the third-party warnings of harness/_warnings.py are
hidden, each only from the library it is listed for; the harness's own warnings show."""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import pytest

from harness._warnings import THIRD_PARTY, ini_filter_lines, quiet_third_party

from tiny_run import build_tiny_suite

pytest_plugins = ["pytester"]

# Text of each listed warning as its library emits it, and a module it comes from.
EXAMPLES = {
    "invalid escape sequence": ("invalid escape sequence '\\s'", "/venv/site-packages/dscribe/descriptors/soap"),
    "Setting the shape on a NumPy array": (
        "Setting the shape on a NumPy array has been deprecated in NumPy 2.5.",
        "ase.geometry.geometry",
    ),
    "The set_(bad|over|under) function will be deprecated": (
        "The set_bad function will be deprecated in a future version.",
        "shap.plots.colors._colors",
    ),
    ".*TorchScript": ("e3nn: TorchScript type inference failed", "torch.jit._script"),
    r".*torch\.jit\.": ("`torch.jit.script` is deprecated", "e3nn.util.jit"),
    ".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected": (
        "Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected, ...",
        "torch.serialization",
    ),
}
THIRD_PARTY_TEXTS = ("invalid escape sequence", "Setting the shape", "set_bad", "TorchScript", "torch.jit")


def _shown(message: str, category: type[Warning], module: str) -> bool:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_third_party():
            warnings.warn_explicit(message, category, filename=f"{module}.py", lineno=1, module=module)
    return bool(seen)


def test_every_listed_warning_has_an_example() -> None:
    assert {quiet.message for quiet in THIRD_PARTY} == set(EXAMPLES)
    assert all(quiet.why for quiet in THIRD_PARTY)


@pytest.mark.parametrize("quiet", THIRD_PARTY, ids=lambda q: f"{q.category.__name__}:{q.message[:30]}")
def test_listed_warning_hidden_only_from_its_library(quiet) -> None:  # type: ignore[no-untyped-def]
    message, module = EXAMPLES[quiet.message]
    assert not _shown(message, quiet.category, module)
    if quiet.module:  # the same text from our own code still shows
        assert _shown(message, quiet.category, "harness.explain.descriptors")
    assert _shown("something else entirely", quiet.category, module)


def test_harness_warning_shows_inside_the_quiet_block(tmp_path: Path) -> None:
    from harness.cache import ArrayCache

    cache = ArrayCache(tmp_path)
    cache.store("x", "k", {"a": [1.0, 2.0]})
    (tmp_path / "x" / "k.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(UserWarning, match=r"mlff-harness: cache entry .* is corrupt"), quiet_third_party():
        assert cache.load("x", "k") is None


def test_pytest_lines_parse_as_filters() -> None:
    from _pytest.config import parse_warning_filter

    for line, quiet in zip(ini_filter_lines(), THIRD_PARTY, strict=True):
        action, message, category, module, _ = parse_warning_filter(line, escape=False)
        assert (action, message, category, module) == ("ignore", quiet.message, quiet.category, quiet.module)


def _cold_dscribe(folder: Path) -> Path:
    """A copy of the installed dscribe without compiled bytecode: importing it compiles every module."""
    import dscribe

    source = Path(dscribe.__file__).parent
    shutil.copytree(source, folder / "dscribe", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_cold_run_prints_the_table_not_warnings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cold = _cold_dscribe(tmp_path / "cold")
    # control: compiling the cold copy does warn (DeprecationWarning on 3.11, SyntaxWarning on >= 3.12)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        soap_py = cold / "dscribe" / "descriptors" / "soap.py"
        compile(soap_py.read_text(), str(soap_py), "exec")
    assert any("invalid escape sequence" in str(w.message) for w in seen)

    suite = build_tiny_suite(pytester.path / "suite", n_structures=9)
    cache = pytester.path / "cache"
    monkeypatch.setenv("PYTHONPATH", str(cold))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    # pytest shows every warning raised in a test, DeprecationWarnings included, by default
    args = ["-p", "no:cacheprovider", "--harness-cache", str(cache), str(suite)]
    result = pytester.runpytest_subprocess(*args, timeout=600)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, text
    assert "mlff-harness summary" in text
    assert "warnings summary" not in text, text
    for fragment in THIRD_PARTY_TEXTS:
        assert fragment not in text

    # The harness's own warning still shows: corrupt one cache entry and run again.
    entries = sorted(cache.rglob("*.npz"))
    assert entries
    entries[0].write_bytes(entries[0].read_bytes()[:40])
    again = pytester.runpytest_subprocess(*args, timeout=600)
    text = again.stdout.str() + again.stderr.str()
    assert again.ret == 0, text
    assert "warnings summary" in text
    assert "mlff-harness: cache entry" in text and "is corrupt" in text
    for fragment in THIRD_PARTY_TEXTS:
        assert fragment not in text


def test_the_cold_copy_is_the_one_imported(tmp_path: Path) -> None:
    """PYTHONPATH puts the cold copy before site-packages (so the run above compiled it)."""
    import subprocess

    cold = _cold_dscribe(tmp_path / "cold")
    out = subprocess.run(
        [sys.executable, "-c", "import dscribe; print(dscribe.__file__)"],
        env={"PYTHONPATH": str(cold), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().startswith(str(cold))
