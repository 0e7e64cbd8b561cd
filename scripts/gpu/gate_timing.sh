#!/usr/bin/env bash
# The shipped main job on one GPU, cold and warm, float32 and float64, with the stage profile (issue 17).
#
#   GIT_COMMIT=$(git rev-parse HEAD) bash scripts/gpu/gate_timing.sh      # on the GPU machine, from the repo root
#
# Installs the wheels in .wheels (as the device scripts do: --target /tmp/site, no index; byte-compiled as a
# user's install is, so the cold run does not compile imports), then for each
# precision runs `pytest suites/cr_sb2te3 --harness-device cuda` twice on one cache folder: cold (empty cache,
# imports included) and warm. Writes at most 8 files to $OUT (default /tmp/gate-timing):
#   env.json                       nvidia-smi, torch/CUDA versions, git commit, CPU count
#   results_float32.json, results_float64.json          --harness-results of the cold runs
#   profile_float32_cold.json ... profile_float64_warm.json   --harness-profile-json (4 files)
#   timing.log                     wall seconds of each run, the SOAP worker timing, the summary tables
# Budget: about 4 minutes when the gate meets its target; each run is capped (cold 130 s, warm 60 s,
# SOAP timing 90 s), so the whole script stays under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/gate-timing}"
mkdir -p "$OUT"
START=$(date +%s)
LOG="$OUT/timing.log"
: > "$LOG"

if compgen -G ".wheels/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .wheels/*.whl > /tmp/pip.log 2>&1 \
    || { echo "pip install of .wheels failed:"; tail -5 /tmp/pip.log; } | tee -a "$LOG"
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"  # DEVICE=cpu: a smoke run of this script anywhere

# the plugin is registered by its entry point only when mlff-harness is installed
PLUGIN=()
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.name == 'mlff_harness' for e in m.entry_points(group='pytest11')) else 1)"; then
  PLUGIN=(-p harness.pytest_plugin.plugin)
fi

"$PY" - "$OUT/env.json" "${GIT_COMMIT:-}" <<'PYEOF'
import json, os, platform, subprocess, sys
info = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)), "git_commit": sys.argv[2] or None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
if not info["git_commit"]:
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                            check=True).stdout.strip()
    except Exception as error:  # noqa: BLE001 - no .git on the device: say so
        info["git_commit"] = f"unknown ({type(error).__name__}); pass GIT_COMMIT"
try:
    info["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
except Exception as error:  # noqa: BLE001
    info["nvidia_smi"] = f"unavailable ({error})"
import torch
info.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
            devices=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
for name in ("mace", "e3nn", "ase", "dscribe", "shap", "sklearn", "numpy", "vesin", "transformers"):
    try:
        module = __import__(name) if name != "transformers" else None
        if name == "transformers":
            import importlib.util
            info[name] = "installed" if importlib.util.find_spec(name) else "absent"
        else:
            info[name] = getattr(module, "__version__", "?")
    except Exception as error:  # noqa: BLE001
        info[name] = f"missing ({type(error).__name__})"
open(sys.argv[1], "w").write(json.dumps(info, indent=1))
print(json.dumps(info))
PYEOF

for DTYPE in ${DTYPES:-float32 float64}; do
  CACHE="/tmp/gate-cache-$DTYPE"
  rm -rf "$CACHE"
  for PHASE in cold warm; do
    T0=$(date +%s.%N)
    EXTRA=()
    [[ "$PHASE" == cold ]] && EXTRA=(--harness-results "$OUT/results_$DTYPE.json")
    LIMIT=130; [[ "$PHASE" == warm ]] && LIMIT=60
    timeout "$LIMIT" "$PY" -m pytest suites/cr_sb2te3 "${PLUGIN[@]}" -p no:cacheprovider -q --harness-device "$DEVICE" \
      --harness-dtype "$DTYPE" --harness-cache "$CACHE" --harness-profile-json "$OUT/profile_${DTYPE}_$PHASE.json" \
      "${EXTRA[@]}" > "/tmp/gate-$DTYPE-$PHASE.log" 2>&1
    RC=$?
    T1=$(date +%s.%N)
    printf '%s %s: rc=%s wall=%s s\n' "$DTYPE" "$PHASE" "$RC" "$(awk "BEGIN{printf \"%.2f\", $T1 - $T0}")" | tee -a "$LOG"
    grep -A 14 "mlff-harness profile" "/tmp/gate-$DTYPE-$PHASE.log" >> "$LOG"
    [[ "$PHASE" == cold ]] && grep -A 30 "mlff-harness summary" "/tmp/gate-$DTYPE-$PHASE.log" >> "$LOG"
    [[ "$RC" -ne 0 ]] && tail -40 "/tmp/gate-$DTYPE-$PHASE.log" >> "$LOG"
  done
done

# SOAP of the 300 reference structures with 1, 4 and 8 worker processes (the gate picks by core count);
# SKIP_SOAP=1 leaves it out (device time is short)
[[ -n "${SKIP_SOAP:-}" ]] || timeout 90 "$PY" - >> "$LOG" 2>&1 <<'PYEOF'
import time
from harness.explain.descriptors import soap_features
from harness.data.reference import load_reference
from harness.gate.session import _soap_jobs
ref = load_reference("reference_data/cr_sb2te3/test.extxyz.gz")
from harness.suite.schema import Soap
settings = Soap(species=list(ref.elements))
structures = list(ref.structures)
print(f"SOAP: the gate uses n_jobs={_soap_jobs(len(structures))} here")
for n_jobs in (1, 4, 8):
    start = time.perf_counter()
    soap_features(structures, settings, n_jobs=n_jobs)
    print(f"SOAP n_jobs={n_jobs}: {time.perf_counter() - start:.2f} s")
PYEOF

echo "gate_timing.sh finished in $(( $(date +%s) - START )) s; files in $OUT" | tee -a "$LOG"
ls "$OUT"
