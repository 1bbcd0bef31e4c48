#!/usr/bin/env bash
# Refit the shipped residual models (traincost/data/residual/) on the committed datasets, with the current
# walk, pricing and profiles: after any change to them `predict` marks the shipped models stale.
#   bash scripts/refit_residuals.sh [FEATURE_CACHE.csv]
# About 15 minutes on a quiet 2-core machine with a cold cache (every row of 9 datasets walked once).
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-${TMPDIR:-/tmp}/traincost-residual-features.csv}
D=data/datasets
R=traincost/data/residual
AMD="$D/cpu-2core-x86_64.csv $D/cpu-2core-x86_64-2026-11-29.csv $D/cpu-2core-x86_64-2026-11-29-sweep3.csv"
INTEL=$(ls $D/cpu-intel-xeon-2core-*.csv | tr '\n' ' ')
H200=$(ls $D/h200-families-*.csv | tr '\n' ' ')  # two H200 hosts: 2026-11-28 (h200.json), 2026-12-04
traincost fit --dataset $AMD -o $R/cpu-2core-x86_64.json.gz --cache "$K"
traincost fit --dataset $INTEL -o $R/cpu-intel-xeon-2core.json.gz --cache "$K"
traincost fit --dataset $H200 -o $R/h200.json.gz --cache "$K"
traincost fit --dataset $AMD $INTEL $H200 -o $R/all.json.gz --cache "$K"
