#!/usr/bin/env bash
# Generates the CHGNet-labelled reference data on the GPU machine (see
# reference_data/README.md). Resumable: a previous call's work folder comes
# back as $OUT/work.tar.gz; copy it to .dg/work.tar.gz and carry .dg.
# Usage (device machine): MAXMIN=8 bash scripts/gpu/datagen.sh
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p /tmp/dg
[ -f .dg/work.tar.gz ] && tar -xzf .dg/work.tar.gz -C /tmp/dg
nvidia-smi --query-gpu=name,memory.used --format=csv
date
python3 reference_data/cr_sb2te3/generate.py pretrain --out-dir "$OUT/pretrain" --work-dir /tmp/dg/pretrain \
  --workers "${WORKERS:-16}" --device "${DEVICE:-cuda}" --n 2000 --seed 2026 2>&1 | tail -5
date
python3 reference_data/cr_sb2te3/generate.py doped --out-dir "$OUT/cr_sb2te3" --work-dir /tmp/dg/doped \
  --workers "${WORKERS:-16}" --device "${DEVICE:-cuda}" --seed 2026 --max-minutes "${MAXMIN:-8}" 2>&1 | tail -15
date
tar -czf "$OUT/work.tar.gz" -C /tmp/dg .
ls -la "$OUT" "$OUT"/*
