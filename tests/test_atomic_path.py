"""harness.files.atomic_path: a temporary file that counts only when its body returns (as `convert` uses it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.files import atomic_path, atomic_write_text


def test_the_file_replaces_the_target_only_when_the_body_returns(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "model.safetensors"
    with atomic_path(target, suffix=".safetensors", mode=0o644) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".safetensors") and tmp.name.startswith(".")
        assert not target.exists()  # nothing is visible while the body writes and checks
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644 & ~umask
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.safetensors"]


def test_a_failing_check_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="differs"), atomic_path(target, suffix=".safetensors") as tmp:
        tmp.write_bytes(b"half-proven")
        raise ValueError("the converted model differs")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_writer_that_renames_its_own_file_onto_the_name_is_kept(tmp_path: Path) -> None:
    """write_safe_checkpoint writes atomically itself: a new file renamed onto the temporary name."""
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        atomic_write_text(tmp, "written by a writer that renames")
    assert target.read_text() == "written by a writer that renames"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
