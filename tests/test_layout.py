"""The package's shape (issue 18): folders in layers, one package imports mace, every folder says its job.

Reads the source with `ast` (module-level and function-level imports alike), so a lazy import
that climbs a layer is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
# Low to high: a module may import from its own folder and from folders listed before it.
LAYERS = ("", "suite", "data", "models", "explain", "gate", "reports", "own_system", "sweep", "pytest_plugin", "cli")
MAX_LINES = 420


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _folder(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "harness":
                found += [(node.lineno, f"harness.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def _target_folder(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "harness" or len(parts) < 2:
        return None
    return parts[1] if (PACKAGE / parts[1]).is_dir() else ""


def test_every_layer_exists_and_every_folder_is_a_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders - {"__pycache__"} == set(LAYERS[1:])


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_climbs_a_layer(path: Path) -> None:
    mine = LAYERS.index(_folder(path))
    climbing = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: imports {module}"
        for line, module in _imports(path)
        if (folder := _target_folder(module)) is not None and LAYERS.index(folder) > mine
    ]
    assert not climbing, "\n".join(climbing)


def test_only_the_mace_package_imports_mace() -> None:
    importers = {
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in _modules()
        for line, module in _imports(path)
        if module == "mace" or module.startswith("mace.")
    }
    assert importers, "the MACE adapter imports mace somewhere: the scan is broken"
    assert all(i.startswith("harness/models/mace/") for i in importers), sorted(importers)


def test_every_folder_says_its_job() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        where = init.relative_to(PACKAGE.parent)
        assert doc and len(doc.split()) >= 8, f"{where}: no docstring saying the folder's job"


def test_no_module_is_long() -> None:
    lengths = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in _modules()}
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"
