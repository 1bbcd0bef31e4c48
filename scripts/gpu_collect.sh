#!/usr/bin/env bash
# One prepared run on a lent GPU: calibrate the device, then sweep real training steps of the
# four generated families with `traincost bench` (the seed's one-factor grids, then a random Sobol plan:
# batch 1-1024, fp32 / tf32 / bf16 / fp16 autocast, NCHW / channels_last, SGD / Adam / AdamW), and
# optionally real torchvision models for validation. Everything lands in one folder, $OUT (the device
# tool's return folder) or ./out, ready to commit; `traincost fit` then runs on the CPU.
#
#   OUT=/tmp/out bash scripts/gpu_collect.sh [calibrate_s] [seed_min] [random_min] [random_count] [models_min]
#
# Defaults fit 9 minutes: calibrate <= 150 s (40 s on the H200, 2026-12-04), seed <= 2.5 min, random <= 3.5
# min (2026-12-04: 114 seed configurations in 1 min; the random plan of 600 spent 2 min drawing and walking
# its plan, then measured 114 in 1.8 min), models 0 (off). A smoke test of two configurations runs first
# and stops the script in seconds when the device's torch cannot walk or step. Each part has its own time
# guard (`--budget-minutes` stops a sweep between configurations, `timeout` backs it up) and writes row by
# row (fsynced), so a part that fails or runs out of time loses nothing already measured; a second run with
# the same OUT resumes (`--resume`). Everything is logged to $OUT/run.log (the device tool returns 8 files).
# Only torch, numpy, pandas, click and traincost are needed here (xgboost is imported by `fit` only).
# Tested on CPU first: TRAINCOST_DEVICE=cpu OUT=/tmp/gout bash scripts/gpu_collect.sh 60 0.3 0.3 8
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
DEVICE=${TRAINCOST_DEVICE:-cuda}
CAL_S=${1:-150}
SEED_MIN=${2:-2.5}
RANDOM_MIN=${3:-3.5}
RANDOM_N=${4:-300}  # the plan walks every configuration it draws (~0.2 s each on the H200 host) inside the budget
MODELS_MIN=${5:-0}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
TC="python3 -m traincost.cli"
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
guard() { python3 -c "print(int(60 * $1 + 45))"; }
LOG="$OUT/run.log"  # one log for every part (appended: a rerun keeps the first run's): the device tool returns at most 8 files
rm -f "$OUT/smoke.csv"
{ date -u; nvidia-smi || true; python3 -c "import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())"; } >> "$LOG" 2>&1
# Smoke test first (two seed configurations, ~20 s): the device's torch may differ from the one the code
# was tested with, and a walk or step that fails there should cost seconds, not the whole lease.
timeout 120 $TC bench --device "$DEVICE" --plan seed --limit 2 --quiet-wait 0 --out "$OUT/smoke.csv" >> "$LOG" 2>&1
if ! python3 -c "import csv, sys; rows = list(csv.DictReader(open('$OUT/smoke.csv'))); sys.exit(0 if rows and all(r['status'] == 'ok' for r in rows) else 1)" >> "$LOG" 2>&1; then
  echo "smoke test failed after $(elapsed) s: stopping" | tee -a "$LOG"; cat "$OUT/smoke.csv" 2>/dev/null | cut -c1-600; tail -n 40 "$LOG"; exit 3
fi
rm -f "$OUT/smoke.csv"
echo "smoke test ok after $(elapsed) s" | tee -a "$LOG"
QUICK=""
[ "$DEVICE" = cpu ] && QUICK="--quick"
timeout "$CAL_S" $TC calibrate --device "$DEVICE" $QUICK -o "$OUT/profile.json" >> "$LOG" 2>&1
echo "calibrate exit $? after $(elapsed) s" | tee -a "$LOG"
# A GPU's profile is named after the GPU; two machines with one GPU model are two devices (their hosts
# differ: docs/bench.md, "The second H200 host"), so the profile (and each row's profile_name) names the day.
[ "$DEVICE" != cpu ] && [ -s "$OUT/profile.json" ] && python3 - "$OUT/profile.json" >> "$LOG" 2>&1 <<'PY'
import datetime, json, sys
path = sys.argv[1]
p = json.load(open(path))
if "host)" not in p["name"]:
    p["name"] = f"{p['name']} ({datetime.date.today().isoformat()} host)"
    json.dump(p, open(path, "w"), indent=1)
print("profile name:", p["name"])
PY
PROFILE=()
[ -s "$OUT/profile.json" ] && PROFILE=(--profile "$OUT/profile.json")  # analytic_ms from the fresh profile
LIMIT=()
[ "$DEVICE" = cpu ] && LIMIT=(--limit 6 --quiet-wait 5)  # the CPU dry run: a few seed configurations
timeout "$(guard "$SEED_MIN")" $TC bench --device "$DEVICE" --plan seed "${LIMIT[@]}" "${PROFILE[@]}" \
  --budget-minutes "$SEED_MIN" --resume --out "$OUT/bench-seed.csv" >> "$LOG" 2>&1
echo "bench seed exit $? after $(elapsed) s" | tee -a "$LOG"
QW=()
[ "$DEVICE" = cpu ] && QW=(--quiet-wait 5)
timeout "$(guard "$RANDOM_MIN")" $TC bench --device "$DEVICE" --plan random --limit "$RANDOM_N" --seed 2026 \
  "${QW[@]}" "${PROFILE[@]}" --budget-minutes "$RANDOM_MIN" --resume --out "$OUT/bench-random.csv" >> "$LOG" 2>&1
echo "bench random exit $? after $(elapsed) s" | tee -a "$LOG"
if python3 -c "import sys; sys.exit(0 if float('$MODELS_MIN') > 0 else 1)"; then
  TINY=()
  [ "$DEVICE" = cpu ] && TINY=(--tiny)
  timeout "$(guard "$MODELS_MIN")" python3 scripts/measure_steps.py --device "$DEVICE" --out "$OUT/steps-models.csv" \
    --plan models "${TINY[@]}" --budget-minutes "$MODELS_MIN" >> "$LOG" 2>&1
  echo "models exit $? after $(elapsed) s" | tee -a "$LOG"
fi
$TC merge "$OUT"/bench-seed.csv "$OUT"/bench-random.csv -o "$OUT/bench-all.csv" >> "$LOG" 2>&1
echo "merged exit $? after $(elapsed) s" | tee -a "$LOG"
exit 0
