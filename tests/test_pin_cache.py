"""A checkpoint pin is checked even when the checkpoint's outputs come from the cache (which never unpickles it)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from harness.errors import ModelError
from harness.files import sha256_file
from harness.gate.session import RunOptions, SuiteRun
from harness.suite.loader import load_suite

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import build_tiny_suite  # noqa: E402


def test_a_wrong_pin_is_refused_with_a_warm_cache(tmp_path: Path) -> None:
    suite = build_tiny_suite(tmp_path / "suite", n_structures=6)
    candidate = suite.parent / "a.model"
    cache = tmp_path / "cache"
    right = RunOptions(candidate=candidate, candidate_sha256=sha256_file(candidate), cache_dir=cache, progress=False)
    energies = SuiteRun(load_suite(suite), right).outputs("candidate").energies_eV  # evaluated and cached
    again = SuiteRun(load_suite(suite), right)
    assert again.outputs("candidate").energies_eV.tolist() == energies.tolist() and not again._models  # a cache hit
    wrong = RunOptions(candidate=candidate, candidate_sha256="0" * 64, cache_dir=cache, progress=False)
    with pytest.raises(ModelError, match=r"a\.model of model 'candidate': sha256 mismatch, expected 0{64}"):
        SuiteRun(load_suite(suite), wrong).outputs("candidate")
    shutil.copy(suite.parent / "b.model", suite.parent / "other.model")
    text = suite.read_text().replace("checkpoint: b.model", "checkpoint: other.model")
    tampered = suite.with_name("tampered.suite.yaml")
    tampered.write_text(text.replace(sha256_file(suite.parent / "b.model"), "ab" * 32))
    with pytest.raises(ModelError, match=r"other\.model of model 'other': sha256 mismatch"):
        SuiteRun(load_suite(tampered), RunOptions(cache_dir=cache, progress=False)).identity("other")


def test_suite_runs_of_one_process_share_a_loaded_checkpoint_but_not_its_pin(tmp_path: Path) -> None:
    """The gate and the sanity suite name the same checkpoint: it is unpickled once; an unpinned file is
    still refused by a run that does not allow it, even after another run loaded it."""
    from harness.gate import session

    session._LOADED.clear()
    suite = build_tiny_suite(tmp_path / "suite", n_structures=6)
    candidate = suite.parent / "a.model"
    pinned = RunOptions(candidate=candidate, candidate_sha256=sha256_file(candidate), progress=False)
    first = SuiteRun(load_suite(suite), pinned).model("candidate")
    assert SuiteRun(load_suite(suite), pinned).model("candidate") is first
    as_float32 = RunOptions(candidate=candidate, candidate_sha256=sha256_file(candidate), dtype="float32",
                            progress=False)
    assert SuiteRun(load_suite(suite), as_float32).model("candidate") is not first  # another precision: its own
    unpinned = RunOptions(candidate=candidate, allow_unpinned=True, progress=False)
    assert SuiteRun(load_suite(suite), unpinned).model("candidate") is first  # same bytes: shared
    with pytest.raises(ModelError, match="pin"):
        SuiteRun(load_suite(suite), RunOptions(candidate=candidate, progress=False)).model("candidate")
