#!/usr/bin/env bash
# Trains one MACE checkpoint with mace-torch's own trainer (mace_run_train).
# Usage: [TLIMIT=seconds] train.sh NAME OUTDIR [extra mace_run_train args...]
# TLIMIT stops the trainer itself (not this shell) so no orphan keeps pipes open.
# Common settings for every shipped checkpoint: r_max 6.0 A, 32 scalar + 32
# vector channels, 2 interactions, correlation 3, float64, energy_weight 100,
# forces_weight 10 (SWA is off: with mace-torch 0.3.16 on torch 2.11 it crashed
# at the stage switch). Everything is seeded.
set -u
# One thread pool per run: several runs share the machine, and torch's default
# (all cores per process) made data loading 20x slower when six ran at once.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MKL_NUM_THREADS=${MKL_NUM_THREADS:-2}
name=$1; out=$2; shift 2
mkdir -p "$out/$name"
timeout -k 10 "${TLIMIT:-100000}" python3 -m mace.cli.run_train \
  --name="$name" --seed="${SEED:-2026}" --device="${DEVICE:-cuda}" --default_dtype=float64 \
  --model=MACE --r_max=6.0 --num_channels=32 --max_L=1 --num_interactions=2 --correlation=3 \
  --energy_key=REF_energy --forces_key=REF_forces \
  --energy_weight=100 --forces_weight=10 --loss=weighted --error_table=PerAtomRMSE \
  --batch_size="${BATCH:-16}" --valid_batch_size=32 --lr=0.01 --scheduler_patience=5 --patience=50 \
  --eval_interval=1 --num_workers=2 --save_cpu \
  --work_dir="$out/$name" --model_dir="$out/$name" --log_dir="$out/$name/logs" \
  --checkpoints_dir="$out/$name/checkpoints" --results_dir="$out/$name/results" \
  "$@" > "$out/$name/train.log" 2>&1
rc=$?
echo "[train] $name exit $rc"; grep -E "RMSE|Error|error" "$out/$name/train.log" | tail -12
exit $rc
