"""Chaos (issue 16, item 5): a gate run whose cache and results are sabotaged.

One scenario on the tiny two-model suite (tests/tiny_run.py), its accuracy bound
set so that one check fails (a gate outcome worth reproducing, exit code 1):
a results file the process is killed in the middle of writing, a truncated
cache entry, a cache that cannot be written, a results path that cannot be
written before or after the run. No corrupt results file is ever left, every
rerun ends with the same outcomes, and nothing prints a traceback.

These tests run as root here, and root ignores permission bits, so "cannot be
written" is made with a regular *file* where a folder is expected (the cache
root, the results' parent folder): ``mkdir`` and ``open`` then fail for every
user. As any other user a ``chmod`` read-only folder takes the same code path
(an ``OSError`` from the atomic writer).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.cache import ArrayCache
from harness.files import atomic_write, atomic_write_text, output_path_problem

from tiny_run import build_tiny_suite

pytest_plugins = ["pytester"]

# Writes half of the JSON document, flushes it to disk, then the process is killed
# (SIGKILL: no cleanup, no finally blocks): the worst moment for a results file.
KILL_MID_WRITE = textwrap.dedent(
    """
    import json, os, signal

    def dump(obj, fp, **kwargs):
        text = json.dumps(obj, **kwargs)
        fp.write(text[: len(text) // 2])
        fp.flush()
        os.fsync(fp.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    json.dump = dump
    """
)

# Replaces the results' folder by a file after the checks ran, before the reports are written.
BREAK_RESULTS_FOLDER = textwrap.dedent(
    """
    import shutil
    import pytest

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(session):
        folder = session.config.rootpath / "out"
        shutil.rmtree(folder, ignore_errors=True)
        folder.write_text("a file where the results folder was")
    """
)


def _outcomes(path: Path) -> list[dict]:
    """The per-check outcomes of a results file (the part that must not change between runs)."""
    return json.loads(path.read_text())["outcomes"]


def _assert_clean(text: str) -> None:
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text


def test_gate_run_survives_chaos(pytester: pytest.Pytester) -> None:
    suite = build_tiny_suite(pytester.path / "suite", e_max=0.5, n_structures=9)
    cache, out = pytester.path / "cache", pytester.path / "out"
    out.mkdir()
    results = out / "results.json"

    def gate(*extra: str, cache_dir: Path = cache) -> pytest.RunResult:
        return pytester.runpytest("-p", "no:cacheprovider", f"--harness-cache={cache_dir}", *extra, str(suite))

    # 0. the reference run: cold cache, one check fails by design
    first = gate(f"--harness-results={results}")
    _assert_clean(first.stdout.str())
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    reference = _outcomes(results)
    assert [o["passed"] for o in reference].count(False) == 1
    good_bytes = results.read_bytes()

    # 1. killed while writing the results: the old file stays whole, byte for byte
    conftest = pytester.makeconftest(KILL_MID_WRITE)
    killed = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--harness-cache={cache}", f"--harness-results={results}", str(suite), timeout=600
    )
    assert killed.ret == -signal.SIGKILL
    assert results.read_bytes() == good_bytes
    conftest.unlink()

    # 2. a truncated cache entry: reported once, recomputed, same outcomes
    entries = sorted(cache.rglob("*.npz"))
    assert entries
    victim = max(entries, key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    again = gate(f"--harness-results={results}")
    _assert_clean(again.stdout.str())
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    again.stdout.fnmatch_lines([f"*mlff-harness: cache entry {victim} is corrupt*recomputing*"])
    assert _outcomes(results) == reference
    assert ArrayCache(cache).load(victim.parent.name, victim.stem) is not None  # stored again, whole

    # 3. a cache that cannot be written (a file where its folder should be): one warning, same outcomes
    blocked = pytester.path / "blocked-cache"
    blocked.write_text("not a folder")
    unwritable = gate(f"--harness-results={results}", cache_dir=blocked)
    _assert_clean(unwritable.stdout.str())
    assert unwritable.ret == pytest.ExitCode.TESTS_FAILED
    assert unwritable.stdout.str().count(f"mlff-harness: cannot write to the cache {blocked}") == 1
    assert unwritable.parseoutcomes()["warnings"] == 1
    assert _outcomes(results) == reference

    # 4. a results path that cannot be written, known before the run: refused at once
    for bad, problem in ((blocked / "results.json", f"{blocked} is a file, not a folder"), (out, "is a folder")):
        refused = gate(f"--harness-results={bad}")
        assert refused.ret == pytest.ExitCode.USAGE_ERROR
        refused.stderr.fnmatch_lines([f"*--harness-results {bad}: {problem}*fix: give a writable file path*"])
        _assert_clean(refused.stdout.str() + refused.stderr.str())

    # 5. ... or broken during the run: one line, exit 4, and no results file at all
    pytester.makeconftest(BREAK_RESULTS_FOLDER)
    broken = gate(f"--harness-results={results}")
    _assert_clean(broken.stdout.str())
    assert broken.ret == pytest.ExitCode.USAGE_ERROR
    broken.stdout.fnmatch_lines(["mlff-harness: the reports were not written: *Error: *"])
    assert out.is_file()  # the conftest's file; nothing half-written anywhere


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    atomic_write_text(path, '{"old": true}\n')

    def half_then_fail(handle) -> None:  # type: ignore[no-untyped-def]
        handle.write(b'{"new": ')
        raise KeyboardInterrupt  # even a BaseException

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_fail)
    assert path.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # the temporary file is gone


def test_cache_entry_killed_mid_write_is_absent_then_recomputed(tmp_path: Path) -> None:
    """A process killed (SIGKILL) inside np.savez of a cache entry leaves no entry, only a temp file."""
    code = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from harness.cache import ArrayCache

        real = np.savez
        def savez(handle, **arrays):
            handle.write(b"PK\\x03\\x04 half an npz")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        np.savez = savez
        ArrayCache({str(tmp_path)!r}).store("outputs", "k", {{"e": np.arange(5.0)}})
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, cwd=Path(__file__).parents[1])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    folder = tmp_path / "outputs"
    assert not (folder / "k.npz").exists()
    assert [p.name.startswith(".k.npz.") for p in folder.iterdir()] == [True]  # the orphaned temp file
    calls = []
    arrays = ArrayCache(tmp_path).get_or_compute("outputs", "k", lambda: calls.append(1) or {"e": np.arange(5.0)})
    assert calls == [1]
    np.testing.assert_array_equal(arrays["e"], np.arange(5.0))
    assert ArrayCache(tmp_path).load("outputs", "k") is not None


def test_output_path_problems(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert output_path_problem(tmp_path / "new" / "deeper" / "r.json") is None
    assert output_path_problem(tmp_path / "r.json") is None
    assert output_path_problem(tmp_path) == "is a folder, not a file"
    assert output_path_problem(tmp_path / "file" / "r.json") == f"{tmp_path / 'file'} is a file, not a folder"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert output_path_problem(locked / "r.json") == f"folder {locked} is not writable"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the gate test uses a file instead")
def test_read_only_cache_folder_degrades_to_computing(tmp_path: Path) -> None:
    """A warm cache made read-only with chmod: hits still load, a new entry is computed, one warning."""
    root = tmp_path / "cache"
    ArrayCache(root).store("outputs", "old", {"e": np.arange(3.0)})
    for folder in (root / "outputs", root):
        folder.chmod(0o555)
    try:
        cache = ArrayCache(root)
        assert cache.load("outputs", "old") is not None
        warned = r"mlff-harness: cannot write to the cache .*computing without caching"
        with pytest.warns(UserWarning, match=warned) as seen:
            for key in ("new1", "new2"):
                arrays = cache.get_or_compute("outputs", key, lambda: {"e": np.ones(2)})
                np.testing.assert_array_equal(arrays["e"], np.ones(2))
        assert len(seen) == 1
        assert sorted(p.name for p in (root / "outputs").iterdir()) == ["old.npz"]
    finally:
        for folder in (root, root / "outputs"):
            folder.chmod(0o755)
