"""Hostile YAML is refused before it is built (issue 16, item 2).

Anchors and aliases, nesting deeper than ``MAX_DEPTH``, more than ``MAX_NODES``
values and files over ``MAX_SUITE_BYTES`` are each a :class:`SuiteError` naming
the file and line. "Before it is built" is checked, not timed: the loader's
composer (which would expand an alias bomb) must never be called.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import SuiteError
from harness.suite import loader
from harness.suite.loader import MAX_DEPTH, MAX_NODES, MAX_SUITE_BYTES, load_suite

from demo_suite import DEMO, write_placeholders


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """`levels` anchors, each a list repeating the one above `width` times, as the `suite:` value:
    built, it would hold width**levels (387 million for 9 x 9) strings."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels):
        items = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{items}]")
    lines.append(f"suite: [{', '.join([f'*a{levels - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@pytest.fixture
def composed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the YAML nodes the loader composes (each node an alias bomb would expand is one)."""
    calls: list[int] = []
    original = loader._LineLoader.compose_node

    def counting(self, parent, index):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(self, parent, index)

    monkeypatch.setattr(loader._LineLoader, "compose_node", counting)
    return calls


def _write(folder: Path, text: str, name: str = "x.suite.yaml") -> Path:
    write_placeholders(folder)
    path = folder / name
    path.write_text(text)
    return path


def test_the_counter_sees_a_normal_suite_being_composed(tmp_path: Path, composed: list[int]) -> None:
    load_suite(_write(tmp_path, DEMO))
    assert len(composed) > 20  # so a count of 0 below means "refused before composing"


def test_alias_bomb_is_refused_before_expansion(tmp_path: Path, composed: list[int]) -> None:
    path = _write(tmp_path, alias_bomb())
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    error = info.value
    assert error.path == path and error.line == 1
    assert str(error).startswith(f"{path}:1: YAML anchors and aliases are not allowed in a suite (found &a0)")
    assert "write the repeated values out in full" in str(error)
    assert composed == []


def test_alias_without_anchor_and_merge_keys_are_refused(tmp_path: Path, composed: list[int]) -> None:
    merge = DEMO.replace("suite: demo", "base: &base {max: 2.0}\nsuite: demo").replace(
        "{max: 2.0}}", "{<<: *base}}"
    )
    with pytest.raises(SuiteError, match=r":1: YAML anchors and aliases are not allowed in a suite \(found &base\)"):
        load_suite(_write(tmp_path, merge))
    # an alias to an undefined anchor: refused as an alias, at its line
    with pytest.raises(
        SuiteError, match=r":2: YAML anchors and aliases are not allowed in a suite \(found \*nowhere\)"
    ):
        load_suite(_write(tmp_path, "suite: demo\ndescription: *nowhere\n"))
    assert composed == []


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r":1: YAML anchors and aliases are not allowed"):
        load_suite(_write(tmp_path, "suite: &a [*a]\n"))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 50_000])
def test_deep_nesting_is_refused(tmp_path: Path, composed: list[int], depth: int) -> None:
    # 50 000 levels would exhaust Python's stack in a recursive composer
    text = "suite: demo\ndescription: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(SuiteError) as info:
        load_suite(_write(tmp_path, text))
    assert info.value.line == 2
    assert f"YAML nested more than {MAX_DEPTH} levels deep" in str(info.value)
    assert composed == []


def test_nesting_at_the_limit_is_not_refused_for_depth(tmp_path: Path) -> None:
    text = "suite: demo\nx: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    with pytest.raises(SuiteError) as info:  # the schema refuses it; the depth bound does not
        load_suite(_write(tmp_path, text))
    assert "nested" not in str(info.value)


def test_too_many_values_are_refused(tmp_path: Path, composed: list[int]) -> None:
    text = "suite: demo\ndescription:\n" + "- 1\n" * (MAX_NODES + 5)
    assert len(text.encode()) < MAX_SUITE_BYTES
    # values 1-5: the top mapping, `suite`, `demo`, `description`, the list; the list's
    # item k is value 5 + k on line 2 + k, so value MAX_NODES + 1 is on line MAX_NODES - 2
    with pytest.raises(
        SuiteError, match=rf"x.suite.yaml:{MAX_NODES - 2}: the suite has more than {MAX_NODES} YAML values"
    ):
        load_suite(_write(tmp_path, text))
    assert composed == []


def test_oversized_file_is_refused_unread(tmp_path: Path, composed: list[int]) -> None:
    text = DEMO + "#" * (MAX_SUITE_BYTES + 10) + "\n"
    with pytest.raises(SuiteError) as info:
        load_suite(_write(tmp_path, text))
    assert f"the file is larger than {MAX_SUITE_BYTES} bytes, the limit for a suite" in str(info.value)
    assert "check that this is the suite and not data" in str(info.value)
    assert composed == []


def test_a_directory_and_non_utf8_are_suite_errors(tmp_path: Path) -> None:
    folder = tmp_path / "d.suite.yaml"
    folder.mkdir()
    with pytest.raises(SuiteError, match="is a directory, not a suite file"):
        load_suite(folder)
    bad = tmp_path / "latin1.suite.yaml"
    bad.write_bytes("suite: d\u00e9mo\n".encode("latin-1"))
    with pytest.raises(SuiteError, match="not UTF-8 text"):
        load_suite(bad)
