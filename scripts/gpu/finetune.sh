#!/usr/bin/env bash
# Second training call: the foundation model comes from the first call
# (reference_data/checkpoints/foundation.model.gz); fine-tunes FT-MultiT,
# FT-600K and the planted-signal model, and trains scratch, concurrently.
# Training files are decompressed first (mace reading .extxyz.gz was ~100x slower).
set -u
D=/tmp/plain; S=/tmp/sets; C=/tmp/ck; T=scripts/gpu/train.sh
mkdir -p $D $S $C/foundation
for f in train valid test; do gunzip -c reference_data/cr_sb2te3/$f.extxyz.gz > $D/$f.extxyz; done
gunzip -c reference_data/checkpoints/foundation.model.gz > $C/foundation/foundation.model
python3 scripts/gpu/make_training_sets.py $S $D > $C/sets.log 2>&1 &
FT="--foundation_model=$C/foundation/foundation.model --multiheads_finetuning=False --E0s=foundation --lr=0.005"
L=${TLIMIT:-380}
TLIMIT=$L BATCH=32 bash $T ft_multit $C $FT --train_file=$D/train.extxyz --valid_file=$D/valid.extxyz \
  --test_file=$D/test.extxyz --max_num_epochs=${FT_EPOCHS:-8} --keep_checkpoints > $C/ft_multit.out 2>&1 &
TLIMIT=$L BATCH=32 bash $T scratch $C --train_file=$D/train.extxyz --valid_file=$D/valid.extxyz \
  --test_file=$D/test.extxyz --E0s=average --max_num_epochs=${SCRATCH_EPOCHS:-8} > $C/scratch.out 2>&1 &
wait %1
TLIMIT=$((L-30)) BATCH=16 bash $T ft_600k $C $FT --train_file=$S/t600_train.extxyz --valid_file=$S/t600_valid.extxyz \
  --test_file=$D/test.extxyz --max_num_epochs=${FT600_EPOCHS:-10} > $C/ft_600k.out 2>&1 &
TLIMIT=$((L-30)) BATCH=32 bash $T planted_crcr $C $FT --train_file=$S/planted_train.extxyz \
  --valid_file=$S/planted_valid.extxyz --max_num_epochs=${PLANTED_EPOCHS:-8} > $C/planted.out 2>&1 &
wait
cat $C/*.out
timeout 60 python3 scripts/gpu/pack_models.py $C /tmp/pack > $C/pack.log 2>&1; tail -8 $C/pack.log
tar -cf "$OUT/models.tar" -C /tmp/pack .
