"""Packs trained checkpoints after device_train.sh (runs on the GPU machine).

python reference_data/scripts/pack_models.py CK_DIR OUT_DIR
- copies each run's final NAME.model (CPU, float64) to OUT_DIR/NAME.model.gz (gzip);
- a fine-tuned run stopped by its time guard has no final model: its best
  training checkpoint is loaded into the foundation architecture instead
  (same hyper-parameters by construction), and this is recorded;
- writes OUT_DIR/history/ft_multit_epoch-N.model for every kept checkpoint of
  the FT-MultiT run (the history example of `mlff-harness history`);
- writes OUT_DIR/pack.json saying which path each model took.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import sys
from pathlib import Path

import torch

FINE_TUNED = ("ft_multit", "ft_600k", "dopant_blind", "planted_crcr")


def _save_gz(model: torch.nn.Module, out: Path) -> None:
    """torch.save, gzip-compressed (the pickled code objects compress ~9x)."""
    buffer = io.BytesIO()
    torch.save(model, buffer)
    with gzip.GzipFile(out, "wb", mtime=0) as handle:
        handle.write(buffer.getvalue())


def _from_checkpoint(template: Path, checkpoint: Path, out: Path) -> None:
    model = torch.load(template, map_location="cpu", weights_only=False)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    model.load_state_dict(state)
    _save_gz(model.to(torch.float64).cpu(), out)


def _epoch(path: Path) -> int:
    match = re.search(r"epoch-(\d+)", path.name)
    return int(match.group(1)) if match else -1


def main(ck: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, str] = {}
    template = ck / "foundation" / "foundation.model"
    for run in sorted(p for p in ck.iterdir() if p.is_dir()):
        name = run.name
        final = run / f"{name}.model"
        checkpoints = sorted((run / "checkpoints").glob("*.pt"), key=_epoch)
        if final.is_file():
            _save_gz(torch.load(final, map_location="cpu", weights_only=False), out / f"{name}.model.gz")
            record[name] = "final model"
        elif name in FINE_TUNED and checkpoints and template.is_file():
            _from_checkpoint(template, checkpoints[-1], out / f"{name}.model.gz")
            record[name] = f"best checkpoint {checkpoints[-1].name} (time guard stopped training)"
        else:
            record[name] = "MISSING"
        for sub in ("train.log", "results", "logs"):
            src = run / sub
            dst = out / "logs" / name / sub
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dst)
            elif src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
        if name == "ft_multit" and template.is_file():
            (out / "history").mkdir(exist_ok=True)
            for cp in checkpoints:
                _from_checkpoint(template, cp, out / "history" / f"ft_multit_epoch-{_epoch(cp):03d}.model.gz")
    (out / "pack.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
