"""Helpers shared by the test modules (they were copied from module to module before).

Plain functions, imported as ``from conftest import png_size`` (``tests/`` is on
``sys.path`` as for ``tiny_run`` and ``tiny_cases``), and fixtures. Tiny suites
with real checkpoints are built by :mod:`tiny_run` (two models) and by the
``tiny_suite_dir`` fixtures of the modules that need one model.
"""

from __future__ import annotations

import contextlib
import io
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# an 8-site rocksalt-like cube (fractional coordinates): one cation and one anion sublattice of 4 sites each
CUBE_SITES = np.array(
    [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]]
)


def rattled_cubes(n: int, seed: int, *, edge_A: float = 6.1, rattle_A: float = 0.08) -> list[Atoms]:
    """``n`` periodic Cr/Sb/Te cubes (4 Sb, 4 Te, one Sb replaced by Cr at a random site), rattled, seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        symbols = ["Sb"] * 4 + ["Te"] * 4
        symbols[int(rng.integers(0, 4))] = "Cr"
        atoms = Atoms(symbols, scaled_positions=CUBE_SITES, cell=np.eye(3) * edge_A, pbc=True)
        atoms.rattle(rattle_A, seed=seed * 1000 + i)
        out.append(atoms)
    return out


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of PNG bytes; fails the test unless they start as a PNG does."""
    assert data[:8] == PNG_SIGNATURE, data[:8]
    assert data[12:16] == b"IHDR", data[12:16]
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def cli_subprocess(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``python -m harness.cli ARGS`` in a fresh process, as a user runs it (exit code, stdout, stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def cli_in_process(args: Sequence[str]) -> tuple[int, str, str]:
    """``harness.cli.main(args)`` in this process: (exit code, stdout, stderr), argparse's own exits included."""
    from harness.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue(), err.getvalue()
