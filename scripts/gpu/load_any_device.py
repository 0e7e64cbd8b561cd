"""Every shipped checkpoint loads on the GPU, whatever device wrote it (issue 14.1), in both precisions.

    PYTHONPATH=/tmp/site:$PWD python3 scripts/gpu/load_any_device.py OUT.json

Loads each checkpoint with ``MaceModel.load(device=...)`` on the CPU and on CUDA, in float32
and float64, evaluates the first 8 structures of its system's test set, and records the
largest energy difference (meV/atom) between the devices. ``good_gpu.model.gz`` was written on
a GPU by mace_run_train; the others were written on the CPU. Exit 1 if any load fails.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from harness.data.reference import load_reference
from harness.files import sha256_file
from harness.models.mace.model import MaceModel

ROOT = Path(__file__).resolve().parents[2]
CASES = {
    "cu_au/good_gpu.model.gz": "reference_data/cu_au/test.extxyz.gz",
    "cu_au/good.model.gz": "reference_data/cu_au/test.extxyz.gz",
    "ft_multit.model.gz": "reference_data/cr_sb2te3/test.extxyz.gz",
}


def main(out: Path) -> int:
    rows = []
    status = 0
    for name, data in CASES.items():
        path = ROOT / "reference_data" / "checkpoints" / name
        structures = list(load_reference(ROOT / data, max_structures=8).structures)
        n_atoms = np.array([len(a) for a in structures])
        for dtype in ("float32", "float64"):
            energies = {}
            for device in ("cpu", "cuda"):
                start = time.perf_counter()
                try:
                    model = MaceModel.load(path, device=device, dtype=dtype, expected_sha256=sha256_file(path))
                    energies[device] = model.evaluate(structures, batch_size=8).energies_eV
                except Exception as error:  # noqa: BLE001 - recorded, then exit 1
                    rows.append({"checkpoint": name, "dtype": dtype, "device": device, "error": f"{type(error).__name__}: {error}"})
                    status = 1
                    continue
                rows.append({"checkpoint": name, "dtype": dtype, "device": device,
                             "seconds": round(time.perf_counter() - start, 3)})
            if len(energies) == 2:
                diff = 1000 * np.max(np.abs(energies["cpu"] - energies["cuda"]) / n_atoms)
                rows.append({"checkpoint": name, "dtype": dtype, "max_cpu_cuda_diff_meV_per_atom": float(diff)})
    document = {"torch": torch.__version__, "cuda": torch.version.cuda,
                "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "rows": rows}
    out.write_text(json.dumps(document, indent=1))
    print(json.dumps(document, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
