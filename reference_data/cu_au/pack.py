"""Packs the Au:Cu checkpoints after device_train.sh (runs on the GPU machine).

python reference_data/cu_au/pack.py CK_DIR OUT_DIR
For every training run CK_DIR/NAME:
- OUT_DIR/NAME_gpu.model.gz: the final NAME.model exactly as mace_run_train wrote
  it on the GPU (no --save_cpu: its tensors and e3nn's nested pickles carry
  "cuda" storages), gzip-compressed byte for byte;
- OUT_DIR/NAME.model.gz: the same model moved to the CPU and saved again;
- a run stopped by its time guard before writing NAME.model: its last training
  checkpoint loaded into the architecture of a finished run (every run shares the
  hyper-parameters), saved as NAME.model.gz only, and recorded;
- OUT_DIR/logs/NAME/: train.log and the results folder;
- OUT_DIR/pack.json: which path each model took, with the library versions.
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


def _save_gz(model: torch.nn.Module, out: Path) -> None:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    with gzip.GzipFile(out, "wb", mtime=0) as handle:
        handle.write(buffer.getvalue())


def _epoch(path: Path) -> int:
    match = re.search(r"epoch-(\d+)", path.name)
    return int(match.group(1)) if match else -1


def main(ck: Path, out: Path) -> None:
    import e3nn
    import mace

    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, object] = {
        "versions": {"torch": torch.__version__, "e3nn": e3nn.__version__, "mace": mace.__version__,
                     "cuda": torch.version.cuda,
                     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    }
    runs = sorted(p for p in ck.iterdir() if p.is_dir())
    finished = [r / f"{r.name}.model" for r in runs if (r / f"{r.name}.model").is_file()]
    for run in runs:
        name = run.name
        final = run / f"{name}.model"
        if final.is_file():
            with gzip.GzipFile(out / f"{name}_gpu.model.gz", "wb", mtime=0) as handle:
                handle.write(final.read_bytes())
            model = torch.load(final, weights_only=False)
            device = str(next(model.parameters()).device)
            _save_gz(model.to("cpu"), out / f"{name}.model.gz")
            record[name] = f"final model (saved on {device}); CPU copy"
        else:
            checkpoints = sorted((run / "checkpoints").glob("*.pt"), key=_epoch)
            if checkpoints and finished:
                model = torch.load(finished[0], map_location="cpu", weights_only=False)
                state = torch.load(checkpoints[-1], map_location="cpu", weights_only=False)["model"]
                result = model.load_state_dict(state, strict=False)
                params = {n for n, _ in model.named_parameters()}
                if set(result.missing_keys) & params:
                    record[name] = f"MISSING: parameters absent from {checkpoints[-1].name}"
                else:
                    _save_gz(model.cpu(), out / f"{name}.model.gz")
                    record[name] = (f"time guard: last checkpoint {checkpoints[-1].name} in the architecture "
                                    f"of {finished[0].name}; missing {result.missing_keys}, "
                                    f"unexpected {result.unexpected_keys}")
            else:
                record[name] = "MISSING"
        for sub in ("train.log", "results"):
            src, dst = run / sub, out / "logs" / name / sub
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dst)
            elif src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
    (out / "pack.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
