"""Suite files: YAML with line numbers -> validated :class:`~harness.suite.schema.Suite`.

Every error is a :class:`~harness.errors.SuiteError` naming the file, the line
and the field, and saying what would fix it. Paths in a suite resolve relative
to the suite file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from harness.errors import SuiteError
from harness.suite.schema import CHECK_KINDS, Suite

Loc = tuple[Any, ...]


@dataclass(frozen=True)
class LoadedSuite:
    """A validated suite with where it came from."""

    suite: Suite
    path: Path
    lines: dict[Loc, int] = field(repr=False)

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """A path from the suite, relative to the suite file."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()

    def line_of(self, loc: Loc) -> int:
        """The line of the deepest YAML node along `loc` (1-based)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1

    def check_line(self, index: int) -> int:
        return self.line_of(("checks", index))


class _LineLoader(yaml.SafeLoader):
    """A safe loader: no Python objects, duplicate keys are errors."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, not a {type(key).__name__}", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return dict(loader.construct_pairs(node, deep=deep))


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# YAML 1.2 booleans (true/false only): under YAML 1.1 an interval bound's `on: ci_low` key
# would load as the boolean True (and yes/no/on/off values are still read as bools by pydantic).
_BOOL_TAG = "tag:yaml.org,2002:bool"
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _record_lines(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path, active: frozenset[int] = frozenset()
) -> None:
    if id(node) in active:
        raise SuiteError("a YAML alias refers to a node that contains it", path=path, line=node.start_mark.line + 1)
    active = active | {id(node)}
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            keys: list[Any] = [key_node.value]
            if isinstance(key_node, yaml.ScalarNode):
                constructed = yaml.SafeLoader("").construct_object(key_node)
                if constructed != key_node.value and isinstance(constructed, (int, float, bool)):
                    keys.append(constructed)  # pydantic reports `1:` as the integer 1
            for key in keys:
                _record_lines(value_node, loc + (key,), lines, path, active)
                lines[loc + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, loc + (index,), lines, path, active)


# Bounds on what a suite file may be (a real suite is a few KB, a few levels deep, a few
# hundred nodes). They are checked on the stream of parser events, before any node is built.
MAX_SUITE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 20_000
# libyaml's parser when PyYAML has it (about 20x faster); it yields the same events.
_EventLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _refuse(message: str, path: Path, event: yaml.Event, fix: str) -> SuiteError:
    return SuiteError(message, path=path, line=event.start_mark.line + 1, fix=fix)


def _check_events(text: str, path: Path) -> None:
    """Refuse anchors/aliases, deep nesting and huge node counts, one event at a time.

    An alias bomb (anchors whose lists repeat the anchor above them) is a few
    hundred bytes that expand to billions of nodes when built; refusing the
    first anchor or alias here, before composing, costs time linear in the text.
    The parser is iterative, so a deep ``[[[[...`` cannot exhaust Python's stack here.
    """
    try:
        _scan_events(text, path, _EventLoader)
    except yaml.YAMLError:  # invalid YAML: scan with the Python parser, whose messages we pin
        _scan_events(text, path, yaml.SafeLoader)


def _scan_events(text: str, path: Path, parser: type) -> None:
    depth = nodes = 0
    for event in yaml.parse(text, Loader=parser):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise _refuse(
                f"YAML anchors and aliases are not allowed in a suite (found {sign}{event.anchor})",
                path,
                event,
                "write the repeated values out in full; an alias can make a small file expand "
                "to billions of values",
            )
        if isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                raise _refuse(
                    f"the suite has more than {MAX_NODES} YAML values",
                    path,
                    event,
                    "a suite holds a few hundred values; check that this is the suite and not data",
                )
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _refuse(
                    f"YAML nested more than {MAX_DEPTH} levels deep",
                    path,
                    event,
                    "a suite needs a few levels; check the brackets and indentation",
                )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def parse_yaml(text: str, path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text into plain data and a map from key path to line.

    Anchors and aliases, nesting deeper than :data:`MAX_DEPTH` and more than
    :data:`MAX_NODES` values are refused before anything is built.
    """
    try:
        _check_events(text, path)
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or str(err)
        raise SuiteError(
            f"invalid YAML: {problem}",
            path=path,
            line=line,
            fix="check indentation, colons and quotes on that line",
        ) from None
    except yaml.YAMLError as err:
        raise SuiteError(f"invalid YAML: {err}", path=path) from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _record_lines(node, (), lines, path)
    return data, lines


def _field_name(loc: Loc) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")


def _fix_for(error: ErrorDetails) -> str | None:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "remove it, or check its spelling against `mlff-harness schema`"
    if kind == "missing":
        return "add it"
    if kind == "union_tag_invalid":
        return f"use one of the check kinds {', '.join(CHECK_KINDS)}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "give a value of the type the schema asks for"
    return None


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "?")
        return f"unknown check kind {tag!r}"
    if kind == "union_tag_not_found":
        return "each check must be a one-key mapping {kind: {...}}"
    return msg


def _check_item_shape(data: Any, path: Path, lines: dict[Loc, int]) -> None:
    """Reject check items that are not one-key mappings before pydantic sees them."""
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
        return
    for index, item in enumerate(data["checks"]):
        loc = ("checks", index)
        if not isinstance(item, dict) or len(item) != 1:
            raise SuiteError(
                "a check must be a mapping with exactly one key, the check kind",
                path=path,
                line=lines.get(loc),
                field=_field_name(loc),
                fix=f"write it as `- <kind>: {{...}}` with kind one of {', '.join(CHECK_KINDS)}",
            )
        ((kind, body),) = item.items()
        if body is not None and not isinstance(body, dict):
            raise SuiteError(
                f"the body of check {kind!r} must be a mapping",
                path=path,
                line=lines.get(loc + (kind,)),
                field=_field_name(loc + (kind,)),
                fix="indent its fields under the kind",
            )


def _read_text(path: Path) -> str:
    """The file's text, at most :data:`MAX_SUITE_BYTES` of it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SUITE_BYTES + 1)
    except FileNotFoundError:
        raise SuiteError("suite file not found", path=path) from None
    except IsADirectoryError:
        raise SuiteError("is a directory, not a suite file", path=path, fix="pass a *.suite.yaml file") from None
    except OSError as err:
        raise SuiteError(f"cannot read suite file: {err}", path=path) from None
    if len(data) > MAX_SUITE_BYTES:
        raise SuiteError(
            f"the file is larger than {MAX_SUITE_BYTES} bytes, the limit for a suite",
            path=path,
            fix="a suite is a few KB of YAML; check that this is the suite and not data",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SuiteError(f"cannot read suite file: not UTF-8 text ({err})", path=path) from None


def load_suite(path: str | Path) -> LoadedSuite:
    """Read and validate a suite file; every problem is a SuiteError with file and line."""
    path = Path(path)
    text = _read_text(path)
    data, lines = parse_yaml(text, path)
    if data is None:
        raise SuiteError("the suite file is empty", path=path, line=1, fix="see suites/ for examples")
    if not isinstance(data, dict):
        raise SuiteError(
            f"a suite must be a YAML mapping, not a {type(data).__name__}", path=path, line=1
        )
    _check_item_shape(data, path, lines)
    try:
        suite = Suite.model_validate(data, context={"defer_references": True})
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        loaded = LoadedSuite(suite=None, path=path, lines=lines)  # type: ignore[arg-type]
        more = len(err.errors()) - 1
        message = _message(first) + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
        raise SuiteError(
            message,
            path=path,
            line=loaded.line_of(loc),
            field=_field_name(loc) or None,
            fix=_fix_for(first),
        ) from None
    loaded = LoadedSuite(suite=suite, path=path.resolve(), lines=lines)
    problems = suite.reference_problems()
    if problems:
        loc, message = problems[0]
        raise SuiteError(message, path=path, line=loaded.line_of(loc), field=_field_name(loc))
    _check_files(loaded)
    return loaded


def _check_files(loaded: LoadedSuite) -> None:
    """Every file the suite names must exist (checkpoints may be overridden later)."""
    suite = loaded.suite
    wanted: list[tuple[Loc, str]] = [(("reference", "structures"), suite.reference.structures)]
    for name, spec in suite.models.compare_with.items():
        wanted.append((("models", "compare_with", name, "checkpoint"), spec.checkpoint))
    for loc, relative in wanted:
        if not loaded.resolve(relative).is_file():
            raise SuiteError(
                f"file not found: {loaded.resolve(relative)}",
                path=loaded.path,
                line=loaded.line_of(loc),
                field=_field_name(loc),
                fix="paths are relative to the suite file",
            )
