#!/usr/bin/env bash
# Trains every Au:Cu checkpoint in one call on one GPU (run from the repository
# root; the device has torch + CUDA, mace-torch and its pure-Python needs come as
# wheels in .wheels/). The runs share the GPU concurrently: the models are small.
# Every run: MACE, r_max 5.0 A, 32x0e+32x1o channels (num_channels 32, max_L 1),
# 2 interactions, correlation 3, float64, energy_weight 100, forces_weight 10,
# no SWA, seed 2026, and NO --save_cpu: the final models are written as they sit
# on the GPU (pack.py also keeps a CPU copy).
#   good          train/valid of reference_data/cu_au (test = the gate's test set)
#   planted_auau       the same with the planted Au-Au pair term added to the labels
#   planted_auau_weak  the same with a weaker, wider Au-Au term (generate.py PLANTED)
#   blind         only the pure-Cu frames (dopant-blind; Au in its element table,
#                 E0s fixed from a least-squares fit of the full training set)
# Each run has a wall-clock guard (TL seconds) so that packing fits the call.
# Wheels carried in .wheels/ (cp312, pip download --only-binary=:all: --no-deps):
#   mace-torch 0.3.16, e3nn 0.6.0, ase 3.29.0, configargparse 1.9.0, gitpython 3.2.1,
#   gitdb 4.0.12, smmap 5.0.3, lmdb 3.0.0, matscipy 1.3.1, orjson 3.13.0,
#   prettytable 3.18.0, wcwidth 0.9.4, torch-ema 0.3, opt-einsum-fx 0.1.4
#   (python-hostlist has no wheel; mace imports it only on SLURM).
# Used: `run` with carry [".wheels"], command
#   set -o pipefail; bash reference_data/cu_au/device_train.sh 2>&1 | tee $OUT/device.log
# (H200, 374 s wall, all four runs finished their 70 epochs).
# A dry run on a CPU machine with mace installed:
#   SKIP_INSTALL=1 DEVICE=cpu EP=1 PY=.venv/bin/python OUT=/tmp/out bash reference_data/cu_au/device_train.sh
set -u
PY=${PY:-python3}
if [ -z "${SKIP_INSTALL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .wheels/*.whl > /tmp/pip.log 2>&1 \
    || { cat /tmp/pip.log; exit 1; }
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
D=reference_data/cu_au; S=${S:-/tmp/sets}; C=${C:-/tmp/ck}; TL=${TL:-470}; EP=${EP:-70}
mkdir -p $S $C
$PY -c "import torch, e3nn, mace; print('torch', torch.__version__, 'e3nn', e3nn.__version__, 'mace', mace.__version__, 'cuda', torch.cuda.is_available())"
$PY $D/generate.py variants $S || exit 1
for s in train valid test; do gunzip -c $D/$s.extxyz.gz > $S/$s.extxyz; done
# E0s of the blind run (Au never appears in its data): least squares of the full training set
E0S=$($PY -c '
import sys, numpy as np
from ase.io import read
frames = read(sys.argv[1], index=":")
A = np.array([[list(a.numbers).count(z) for z in (29, 79)] for a in frames], float)
coef = np.linalg.lstsq(A, np.array([a.info["REF_energy"] for a in frames]), rcond=None)[0]
print("{29: %.8f, 79: %.8f}" % tuple(coef))' $S/train.extxyz)
echo "E0s for blind: $E0S"
train() {
  name=$1; shift; mkdir -p $C/$name
  OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 timeout -k 10 $TL $PY -m mace.cli.run_train \
    --name=$name --seed=2026 --device=${DEVICE:-cuda} --default_dtype=float64 \
    --model=MACE --r_max=5.0 --num_channels=32 --max_L=1 --num_interactions=2 --correlation=3 \
    --energy_key=REF_energy --forces_key=REF_forces \
    --energy_weight=100 --forces_weight=10 --loss=weighted --error_table=PerAtomRMSE \
    --batch_size=16 --valid_batch_size=32 --lr=0.01 --scheduler_patience=5 --patience=50 \
    --eval_interval=1 --num_workers=2 --max_num_epochs=$EP \
    --work_dir=$C/$name --model_dir=$C/$name --log_dir=$C/$name/logs \
    --checkpoints_dir=$C/$name/checkpoints --results_dir=$C/$name/results \
    "$@" > $C/$name/train.log 2>&1
  echo "[train] $name exit $?"; grep -E "RMSE|Error|error|Epoch $((EP-1))" $C/$name/train.log | tail -8
}
train good --train_file=$S/train.extxyz --valid_file=$S/valid.extxyz --test_file=$S/test.extxyz --E0s=average &
for p in planted_auau planted_auau_weak; do
  train $p --train_file=$S/${p}_train.extxyz --valid_file=$S/${p}_valid.extxyz --test_file=$S/test.extxyz --E0s=average &
done
train blind --train_file=$S/blind_train.extxyz --valid_file=$S/blind_valid.extxyz --test_file=$S/test.extxyz \
  --atomic_numbers="[29, 79]" --E0s="$E0S" &
wait
nvidia-smi --query-gpu=name,memory.used --format=csv 2>/dev/null
rm -rf $C.pack; $PY $D/pack.py $C $C.pack
tar -cf "$OUT/cu_au_models.tar" -C $C.pack .
