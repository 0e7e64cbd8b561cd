"""Where the gate's ``load`` stage goes on a GPU host: one line per step, in a fresh process.

    python scripts/gpu/load_profile.py [--device cuda] [--dtype float32] [--cprofile N]

Steps, each timed with ``time.perf_counter`` (the device synchronised after CUDA steps):
``import torch``, the first CUDA context (``torch.zeros(1, device=...)``), ``import mace``
(through ``harness.models.mace._imports``), the checkpoint's sha256, unpickling on the CPU,
``.to(device, dtype)``, and the first and second fused pass on one reference structure
(the first includes TorchScript/e3nn specialisation and CUDA kernel loading). With
``--cprofile N`` it also prints the N most expensive functions (cumulative) of the whole load.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "reference_data" / "checkpoints" / "ft_multit.model.gz"
REFERENCE = REPO / "reference_data" / "cr_sb2te3" / "test.extxyz.gz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cprofile", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    steps: list[tuple[str, float]] = []
    profiler = cProfile.Profile() if args.cprofile else None

    def timed(label: str, work):  # noqa: ANN001, ANN202
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        result = work()
        if args.device.startswith("cuda") and "torch" in sys.modules:
            sys.modules["torch"].cuda.synchronize()
        if profiler:
            profiler.disable()
        steps.append((label, time.perf_counter() - start))
        print(f"{label:<34} {steps[-1][1]:7.2f} s", flush=True)
        return result

    torch = timed("import torch", lambda: __import__("torch"))
    timed("first CUDA context" if args.device.startswith("cuda") else "first tensor",
          lambda: torch.zeros(1, device=args.device))
    from harness.models.mace import _imports

    timed("import mace (+ e3nn)", _imports._mace)
    from harness.files import sha256_file

    timed("sha256 of the checkpoint", lambda: sha256_file(CHECKPOINT))
    from harness.models.mace.model import MaceModel

    model = timed("MaceModel.load (unpickle, .to)",
                  lambda: MaceModel.load(CHECKPOINT, device=args.device, dtype=args.dtype))
    from harness.data.reference import load_reference

    structures = list(timed("read the reference", lambda: load_reference(REFERENCE)).structures)
    timed("first fused pass (1 structure)", lambda: model.evaluate(structures[:1]))
    timed("second fused pass (1 structure)", lambda: model.evaluate(structures[1:2]))
    timed("first batch of 16", lambda: model.evaluate(structures[2:18], batch_size=16))
    timed("second batch of 16", lambda: model.evaluate(structures[18:34], batch_size=16))
    print(f"{'total':<34} {sum(s for _, s in steps):7.2f} s")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
