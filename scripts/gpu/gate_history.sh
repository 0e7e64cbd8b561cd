#!/usr/bin/env bash
# The shipped example of `mlff-harness history`: the release gate run on every
# epoch checkpoint of the FT-MultiT history run (reference_data/checkpoints/history),
# each writing a results file with its epoch as the step.
# 4 gate runs at a time share the GPU. Needs PYTHONPATH with the harness.
set -u
mkdir -p /tmp/hist
H=reference_data/checkpoints/history
for ck in $H/ft_multit_history_epoch-*.model.gz; do
  step=$(basename $ck .model.gz); step=$((10#${step##*-}))
  sha=$(sha256sum $ck | cut -d' ' -f1)
  timeout 200 python3 -m pytest suites/cr_sb2te3/release_gate.suite.yaml -p harness.pytest_plugin.plugin -p no:cacheprovider -q --harness-device cuda \
    --harness-no-cache --harness-candidate $ck --harness-candidate-sha256 $sha --harness-step $step \
    --harness-label "ft_multit_history epoch $step" --harness-results /tmp/hist/epoch-$(printf %03d $step).json \
    > /tmp/hist/epoch-$step.log 2>&1 &
  while [ "$(jobs -r | wc -l)" -ge 4 ]; do sleep 1; done
done
wait
tail -n 4 /tmp/hist/epoch-0.log; tar -cf "$OUT/history.tar" -C /tmp/hist .
