#!/usr/bin/env bash
# Attribution throughput on a GPU machine, in one call (budget: ~6 minutes; hard cap 8.5).
#
#   PYTHONPATH=/tmp/site:$PWD bash benchmarks/gpu_run.sh            # on the GPU machine
#   PYTHONPATH=$PWD bash benchmarks/gpu_run.sh --quick               # CPU smoke run, anywhere
#
# Needs torch, mace-torch, e3nn, ase, numpy (and vesin or matscipy for fast neighbour lists);
# not asv or pytest-benchmark. Writes to $OUT (default benchmarks/gpu-results):
#   env.json         versions, devices, neighbour-list backend
#   throughput.json  every row (a) mace, (b) fused, (c) loop, (d) pipeline, auto-batch; ratios
#   throughput.md    the same as markdown tables (paste into benchmarks/README.md)
#   multigpu.json    pytest-xdist, one worker per GPU vs one worker (only with >1 GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/gpu-results}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
export MLFF_BENCH_CACHE="${MLFF_BENCH_CACHE:-/tmp/mlff-harness-bench}"
QUICK=()
if [[ "${1:-}" == "--quick" ]]; then QUICK=(--quick --device cpu); fi
START=$(date +%s)

"$PY" - "$OUT/env.json" <<'EOF'
import json, platform, sys
import torch
from harness.models.neighbours import available_backends
info = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
            devices=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            cpu_threads=torch.get_num_threads(), neighbour_backends=list(available_backends()))
for name in ("mace", "e3nn", "ase", "vesin", "matscipy", "numpy", "xdist"):
    try:
        info[name] = getattr(__import__(name), "__version__", "?")
    except Exception as error:  # noqa: BLE001 - record what is missing
        info[name] = f"missing ({type(error).__name__})"
open(sys.argv[1], "w").write(json.dumps(info, indent=1))
print(json.dumps(info))
EOF

# (a)-(d) for small, medium and the shipped model, float32 and float64, several batch sizes,
# peak memory and the automatic batch size. --budget-s skips what is left after 270 s.
timeout 390 "$PY" -m benchmarks.throughput "${QUICK[@]}" --out "$OUT" --budget-s 270 2>&1 \
  | grep --line-buffered -v -i cuequivariance | tee "$OUT/throughput.log"

NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [[ "$NGPU" -gt 1 ]]; then
  timeout 120 "$PY" -m benchmarks.multigpu --out "$OUT" --structures 256 2>&1 | tee "$OUT/multigpu.log" || true
else
  echo "{\"gpus\": $NGPU, \"skipped\": \"needs >1 GPU\"}" > "$OUT/multigpu.json"
fi
echo "gpu_run.sh finished in $(( $(date +%s) - START )) s; results in $OUT"
