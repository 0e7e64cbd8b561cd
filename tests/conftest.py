"""Helpers shared by the test modules (they were copied from module to module before).

Plain functions, imported as ``from conftest import png_size`` (``tests/`` is on
``sys.path`` as for ``tiny_run`` and ``tiny_cases``), and fixtures. Tiny suites
with real checkpoints are built by :mod:`tiny_run` (two models) and by the
``tiny_suite_dir`` fixtures of the modules that need one model.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
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
    """``python -m harness.cli.main ARGS`` in a fresh process, as a user runs it (exit code, stdout, stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def cli_in_process(args: Sequence[str]) -> tuple[int, str, str]:
    """``harness.cli.main.main(args)`` in this process: (exit code, stdout, stderr), argparse's own exits included."""
    from harness.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue(), err.getvalue()


# --- running the tests in parallel (pytest-xdist; README: `pytest tests -n 2 --dist loadscope --no-loadscope-reorder`)


def pytest_configure(config: pytest.Config) -> None:
    """Under ``-n N``: each worker (and every gate run it starts) gets cores // N OpenMP/BLAS threads and
    cores // N processes for the surrogate's folds, so N workers do not oversubscribe the cores. Set in the
    controller before the workers start (they import torch later); an explicit setting is kept."""
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 1 and not hasattr(config, "workerinput"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        share = str(max(1, cores // workers))
        os.environ.setdefault("OMP_NUM_THREADS", share)
        os.environ.setdefault("LOKY_MAX_CPU_COUNT", share)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules and classes holding a ``slow`` test (real-checkpoint gate runs) first, each in its own order.

    pytest-xdist's ``--dist loadscope`` hands out one module or class at a time in this order, so the
    long units start first and the short ones fill the other worker, instead of two long units ending
    the run on one worker while the other idles.
    """
    slow = {item.nodeid.rsplit("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.rsplit("::", 1)[0] not in slow)  # stable: same order within
