python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .wheels/*.whl > /tmp/pip.log 2>&1
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /tmp/o1 /tmp/o2
(OUT=/tmp/o1 timeout 200 bash reference_data/scripts/device_calibrate.sh > /tmp/o1/cal.out 2>&1) &
(OUT=/tmp/o2 timeout 200 bash reference_data/scripts/device_history.sh > /tmp/o2/hist.out 2>&1) &
wait
cp /tmp/o1/calibration.tar /tmp/o2/history.tar $OUT/; tail -5 /tmp/o2/hist.out
ls /tmp/hist | head -30
OUT=/tmp/bench timeout 420 bash benchmarks/gpu_run.sh 2>&1 | tail -60
tar -cf $OUT/bench.tar -C /tmp/bench .
