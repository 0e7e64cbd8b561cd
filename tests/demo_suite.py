"""A valid demo suite shared by the loader and schema tests (the loader only checks that files exist)."""

from __future__ import annotations

from pathlib import Path

DEMO = """\
suite: demo
reference: {structures: structures.extxyz}
models:
  candidate: {checkpoint: m.model}
  compare_with: {foundation: {checkpoint: m.model}}
checks:
  - accuracy: {energy_rmse_meV_per_atom: {max: 2.0}}
  - gradcam_locus: {element: Cr, mean_ratio_to_host: {min: 3.0}}
  - shap_classes: {involving: Cr, involving_share: {min: 0.5}}
  - overlap: {with: foundation, shared: {max: 6}}
"""


def write_placeholders(folder: Path) -> None:
    """Empty files where the demo suite expects its structures and checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "structures.extxyz").write_text("")
    (folder / "m.model").write_text("")
