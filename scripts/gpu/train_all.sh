#!/usr/bin/env bash
# Trains every shipped checkpoint in one 10-minute call on one GPU (see
# reference_data/checkpoints/README.md). Foundation first, then the other five
# concurrently (small models leave the GPU mostly idle, so they share it).
# Each run has a wall-clock guard so that everything is packed before the limit.
set -u
D=reference_data/cr_sb2te3; S=/tmp/sets; C=/tmp/ck; T=scripts/gpu/train.sh
mkdir -p $S $C
python3 scripts/gpu/make_training_sets.py $S &
BATCH=32 timeout 200 bash $T foundation $C --train_file=reference_data/pretrain/train.extxyz.gz \
  --valid_file=reference_data/pretrain/valid.extxyz.gz --E0s=average --max_num_epochs=${FOUND_EPOCHS:-12} &
BATCH=32 timeout 530 bash $T scratch $C --train_file=$D/train.extxyz.gz --valid_file=$D/valid.extxyz.gz \
  --test_file=$D/test.extxyz.gz --E0s=average --max_num_epochs=${SCRATCH_EPOCHS:-20} &
wait %1 %2
FT="--foundation_model=$C/foundation/foundation.model --multiheads_finetuning=False --E0s=foundation --lr=0.005"
BATCH=32 timeout 330 bash $T ft_multit $C $FT --train_file=$D/train.extxyz.gz --valid_file=$D/valid.extxyz.gz \
  --test_file=$D/test.extxyz.gz --max_num_epochs=${FT_EPOCHS:-14} --keep_checkpoints &
BATCH=16 timeout 330 bash $T ft_600k $C $FT --train_file=$S/t600_train.extxyz --valid_file=$S/t600_valid.extxyz \
  --test_file=$D/test.extxyz.gz --max_num_epochs=${FT600_EPOCHS:-14} &
BATCH=32 timeout 330 bash $T dopant_blind $C $FT --train_file=$S/blind_train.extxyz --valid_file=$S/blind_valid.extxyz \
  --max_num_epochs=${BLIND_EPOCHS:-10} &
BATCH=32 timeout 330 bash $T planted_crcr $C $FT --train_file=$S/planted_train.extxyz --valid_file=$S/planted_valid.extxyz \
  --max_num_epochs=${PLANTED_EPOCHS:-14} &
wait
python3 scripts/gpu/pack_models.py $C /tmp/pack
tar -cf "$OUT/models.tar" -C /tmp/pack .
