#!/usr/bin/env bash
# Runs `mlff-harness measure` for the analysis and held-out suites on the GPU
# machine (models on CUDA in float64; SOAP and the surrogate on its 16 cores),
# from a snapshot of the committed harness in .snap (git archive HEAD harness
# pyproject.toml) and the working tree's suites.
set -u
R=$PWD; rm -rf /tmp/snap; cp -r .snap /tmp/snap; rm -rf /tmp/snap/suites; cp -r suites /tmp/snap/suites
ln -s $R/reference_data /tmp/snap/reference_data; cd /tmp/snap; mkdir -p /tmp/m
M="python3 -c 'from harness.cli import main; import sys; sys.exit(main())' measure"
for s in analysis measure_heldout measure; do
  eval timeout 500 $M suites/cr_sb2te3/$s.yaml --device cuda --cache /tmp/cache_$s --out /tmp/m/$s.json > /tmp/m/$s.log 2>&1 &
done
wait
tail -3 /tmp/m/*.log; cd $R; tar -cf "$OUT/measure.tar" -C /tmp/m .
