#!/usr/bin/env bash
# Measures the checks of issue 10 (and per-element / per-temperature accuracy)
# on every shipped checkpoint, one pytest process per checkpoint, models on
# CUDA in float64. Input: scripts/gpu/calibration.suite.yaml.in.
set -u
export OMP_NUM_THREADS=2
cp scripts/gpu/calibration.suite.yaml.in suites/cr_sb2te3/_calib.suite.yaml
mkdir -p /tmp/cal
C=reference_data/checkpoints
for ck in $C/ft_multit.model.gz $C/scratch.model.gz $C/foundation.model.gz $C/ft_600k.model.gz \
          $C/planted_crcr.model.gz $C/randomised_last_layer.model.gz $C/dopant_blind.model.gz \
          $C/history/ft_multit_history_final.model.gz; do
  n=$(basename $ck .model.gz); sha=$(sha256sum $ck | cut -d' ' -f1)
  timeout 480 python3 -m pytest suites/cr_sb2te3/_calib.suite.yaml -p harness.pytest_plugin.plugin -p no:cacheprovider -q \
    --harness-device cuda --harness-no-cache --harness-candidate $ck --harness-candidate-sha256 $sha \
    --harness-results /tmp/cal/$n.json > /tmp/cal/$n.log 2>&1 &
done
wait
rm suites/cr_sb2te3/_calib.suite.yaml
tail -n 25 /tmp/cal/ft_multit.log
tar -cf "$OUT/calibration.tar" -C /tmp/cal .
