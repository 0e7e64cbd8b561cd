#!/usr/bin/env bash
# Third training call (session 2), one 10-minute call on one GPU:
# - dopant_blind: the foundation fine-tuned on the doped training frames with
#   every Cr relabelled as Sb, keeping Cr in the model's element table
#   (--atomic_numbers) so that it still evaluates Cr-doped cells: its Cr
#   parameters are the foundation's, never fitted to the doped slab;
# - ft_multit_history: the FT-MultiT recipe again with a checkpoint saved every
#   epoch (--save_all_checkpoints), the shipped example of `mlff-harness history`;
# - meanwhile, the release gate on CUDA (float32 twice, float64 once) for the
#   GPU determinism measurement (issue 7).
set -u
D=/tmp/plain; S=/tmp/sets; C=/tmp/ck; T=scripts/gpu/train.sh
mkdir -p $D $S $C/foundation
for f in train valid test; do gunzip -c reference_data/cr_sb2te3/$f.extxyz.gz > $D/$f.extxyz; done
gunzip -c reference_data/checkpoints/foundation.model.gz > $C/foundation/foundation.model
python3 - <<'PY'
from ase.io import read, write
for split in ("train", "valid"):
    frames = read(f"/tmp/plain/{split}.extxyz", index=":")
    for a in frames:
        a.set_chemical_symbols(["Sb" if s == "Cr" else s for s in a.get_chemical_symbols()])
    write(f"/tmp/sets/blind_{split}.extxyz", frames)
PY
FT="--foundation_model=$C/foundation/foundation.model --multiheads_finetuning=False --E0s=foundation --lr=0.005"
L=${TLIMIT:-440}
TLIMIT=$L BATCH=32 bash $T ft_multit_history $C $FT --train_file=$D/train.extxyz --valid_file=$D/valid.extxyz \
  --test_file=$D/test.extxyz --max_num_epochs=${HIST_EPOCHS:-10} --keep_checkpoints --save_all_checkpoints \
  > $C/history.out 2>&1 &
TLIMIT=$L BATCH=32 bash $T dopant_blind $C $FT --atomic_numbers="[24, 51, 52]" --train_file=$S/blind_train.extxyz \
  --valid_file=$S/blind_valid.extxyz --test_file=$D/test.extxyz --max_num_epochs=${BLIND_EPOCHS:-8} \
  > $C/blind.out 2>&1 &
# the gate runs from a snapshot of the committed harness (.snap, carried: git
# archive HEAD harness pyproject.toml suites), not from the working tree
R=$PWD; rm -rf /tmp/snap; cp -r .snap /tmp/snap; ln -s $R/reference_data /tmp/snap/reference_data
mkdir -p /tmp/gpu; cd /tmp/snap; G="timeout 120 python3 -m pytest suites/cr_sb2te3 -p harness.pytest_plugin.plugin -p no:cacheprovider -q --harness-no-cache --harness-device cuda"
$G --harness-dtype float32 --harness-results /tmp/gpu/gpu_f32_a.json > /tmp/gpu/gate.log 2>&1
$G --harness-dtype float32 --harness-results /tmp/gpu/gpu_f32_b.json >> /tmp/gpu/gate.log 2>&1
$G --harness-dtype float64 --harness-results /tmp/gpu/gpu_f64.json >> /tmp/gpu/gate.log 2>&1
cd $R
wait
cat $C/*.out
timeout 90 python3 scripts/gpu/pack_models.py $C /tmp/pack > $C/pack.log 2>&1; tail -30 $C/pack.log
rm -f /tmp/pack/foundation.model.gz
tar -cf "$OUT/models.tar" -C /tmp/pack .
tar -cf "$OUT/gpu.tar" -C /tmp/gpu .
