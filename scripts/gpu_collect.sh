#!/usr/bin/env bash
# One prepared run on a lent GPU: calibrate the device, then measure real training steps.
# Everything lands in $OUT (the device tool's return folder) or ./out; each part has its own time
# guard and writes as it goes, so a part that fails or runs out of time loses nothing already measured.
#
#   OUT=/tmp/out bash scripts/gpu_collect.sh [calibrate_s] [models_min] [random_min] [random_count]
#
# Tested on CPU with TRAINCOST_DEVICE=cpu and tiny limits before any GPU minute is spent.
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
DEVICE=${TRAINCOST_DEVICE:-cuda}
CAL_S=${1:-170}
MODELS_MIN=${2:-2.5}
RANDOM_MIN=${3:-3.5}
RANDOM_N=${4:-400}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$(date +%s)
{ nvidia-smi || true; python3 -c "import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())"; } > "$OUT/env.txt" 2>&1
QUICK=""
TINY=""
[ "$DEVICE" = cpu ] && QUICK="--quick" && TINY="--tiny"
timeout "$CAL_S" python3 -m traincost.cli calibrate --device "$DEVICE" $QUICK -o "$OUT/profile.json" > "$OUT/calibrate.log" 2>&1
echo "calibrate exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
timeout $(python3 -c "print(int(60 * $MODELS_MIN + 60))") python3 scripts/measure_steps.py --device "$DEVICE" \
  --out "$OUT/steps-models.csv" --plan models $TINY --budget-minutes "$MODELS_MIN" > "$OUT/steps-models.log" 2>&1
echo "models exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
timeout $(python3 -c "print(int(60 * $RANDOM_MIN + 60))") python3 scripts/measure_steps.py --device "$DEVICE" \
  --out "$OUT/steps-random.csv" --plan random --count "$RANDOM_N" --seed 2026 --repeats 5 \
  --budget-minutes "$RANDOM_MIN" > "$OUT/steps-random.log" 2>&1
echo "random exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
tail -3 "$OUT"/*.log >> "$OUT/summary.txt" 2>/dev/null
exit 0
