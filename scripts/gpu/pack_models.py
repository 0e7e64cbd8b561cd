"""Packs trained checkpoints after train_all.sh / finetune.sh / train_blind_history.sh (runs on the GPU machine).

python scripts/gpu/pack_models.py CK_DIR OUT_DIR
- copies each run's final NAME.model (CPU, float64) to OUT_DIR/NAME.model.gz (gzip);
- a fine-tuned run stopped by its time guard has no final model: its best
  training checkpoint is loaded into the foundation architecture instead
  (same hyper-parameters by construction), and this is recorded;
- writes OUT_DIR/history/NAME_epoch-N.model.gz for every checkpoint of a run
  named *_history (the example of `mlff-harness history`);
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

FINE_TUNED = ("ft_multit", "ft_600k", "dopant_blind", "planted_crcr", "ft_multit_history")


def _save_gz(model: torch.nn.Module, out: Path) -> None:
    """torch.save, gzip-compressed (the pickled code objects compress ~9x)."""
    buffer = io.BytesIO()
    torch.save(model, buffer)
    with gzip.GzipFile(out, "wb", mtime=0) as handle:
        handle.write(buffer.getvalue())


def _from_checkpoint(template: Path, checkpoint: Path, out: Path) -> str:
    """The checkpoint's weights in the template's architecture; returns a note.

    strict=False because the trainer's checkpoints and the saved model differ in
    a few non-parameter keys (compiled constants); every parameter must load.
    """
    model = torch.load(template, map_location="cpu", weights_only=False)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    result = model.load_state_dict(state, strict=False)
    params = {name for name, _ in model.named_parameters()}
    missing = sorted(set(result.missing_keys) & params)
    if missing:
        raise SystemExit(f"{checkpoint}: parameters missing from the checkpoint: {missing[:5]}")
    _save_gz(model.to(torch.float64).cpu(), out)
    return f"missing buffers {list(result.missing_keys)}; unexpected {list(result.unexpected_keys)}"


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
            note = _from_checkpoint(template, checkpoints[-1], out / f"{name}.model.gz")
            record[name] = f"last checkpoint {checkpoints[-1].name} (time guard stopped training); {note}"
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
        if name.endswith("_history"):
            # every epoch's checkpoint (--save_all_checkpoints) in the run's own
            # final architecture when it exists, else the foundation's
            own = final if final.is_file() else template
            (out / "history").mkdir(exist_ok=True)
            for cp in checkpoints:
                target = out / "history" / f"{name}_epoch-{_epoch(cp):03d}.model.gz"
                record[target.name] = _from_checkpoint(own, cp, target)
    (out / "pack.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
