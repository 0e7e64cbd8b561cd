"""A tiny two-model suite on disk (real tiny MACE checkpoints, real extxyz) for report and history tests."""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.io import write

from conftest import rattled_cubes

SUITE = """\
suite: tiny-report
reference: {{structures: structures.extxyz}}
models:
  candidate: {{checkpoint: a.model, sha256: {sha_a}}}
  compare_with:
    other: {{checkpoint: b.model, sha256: {sha_b}}}
settings: {{dtype: float64, batch_size: 8, seed: 0}}
surrogate: {{n_estimators: 20, max_depth: 2, cv_folds: 3}}
checks:
  - accuracy:
      energy_rmse_meV_per_atom: {{max: {e_max}}}
  - gradcam_locus:
      element: Cr
      relu_zero_fraction: {{max: 1.0}}
  - shap_classes:
      models: [all]
      surrogate_cv_r2: {{min: -1000.0}}
      involving: Cr
      involving_share: {{min: 0.0}}
"""


def build_tiny_suite(root: Path, *, e_max: float = 50.0, n_structures: int = 12) -> Path:
    """Two tiny random MACE checkpoints, structures labelled by the first (plus noise), and a suite file."""
    from harness.files import sha256_file
    from harness.models.mace.model import MaceModel, save_model
    from harness.models.mace.tiny import build_tiny_mace

    root.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = build_tiny_mace(["Cr", "Sb", "Te"], seed=1, num_channels=8, max_L=0, r_max=4.0)
        second = build_tiny_mace(["Cr", "Sb", "Te"], seed=2, num_channels=8, max_L=0, r_max=4.0)
        save_model(first, root / "a.model")
        save_model(second, root / "b.model")
        structures = rattled_cubes(n_structures, seed=3)
        out = MaceModel.from_module(first, name="a").evaluate(structures, batch_size=6)
    rng = np.random.default_rng(0)
    offsets = out.offsets
    for i, atoms in enumerate(structures):
        atoms.info["REF_energy"] = float(out.energies_eV[i] + rng.normal(0, 0.01))
        atoms.arrays["REF_forces"] = out.forces_eV_per_A[offsets[i] : offsets[i + 1]] + rng.normal(0, 0.01, (8, 3))
    write(root / "structures.extxyz", structures, format="extxyz")
    suite = root / "tiny.suite.yaml"
    suite.write_text(
        SUITE.format(sha_a=sha256_file(root / "a.model"), sha_b=sha256_file(root / "b.model"), e_max=e_max)
    )
    return suite


@dataclass(frozen=True)
class PluginRun:
    """What one real `pytest --harness-results --harness-html --harness-scores` run of the tiny suite wrote."""

    suite: Path
    results: Path
    html: Path
    scores: Path
    returncode: int
    output: str


_RUNS: dict[str, PluginRun] = {}


def plugin_run(base: Path) -> PluginRun:
    """Run the plugin once per test process (in a subprocess, as a user would) and share the files."""
    if "run" not in _RUNS:
        root = base / "tiny-report-run"
        suite = build_tiny_suite(root / "suite")
        results, html, scores = root / "results.json", root / "report.html", root / "scores"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(suite.parent), "-p", "no:cacheprovider", "-q",
             f"--rootdir={root}", f"--harness-results={results}", f"--harness-html={html}",
             f"--harness-scores={scores}", "--harness-step=7", "--harness-date=2024-05-01T12:00",
             "--harness-label=epoch 7"],
            capture_output=True, text=True, cwd=root, timeout=600,
        )
        _RUNS["run"] = PluginRun(suite, results, html, scores, proc.returncode, proc.stdout + proc.stderr)
    return _RUNS["run"]
