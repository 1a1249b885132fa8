#!/usr/bin/env bash
# Regenerate models/default from the shared Taobao sample (research-only terms: the data itself is not
# committed). Needs the train extra: bash scripts/bootstrap.sh train,dev
set -euo pipefail
cd "$(dirname "$0")/.."
raw="${1:-../shared/data/taobao_userbehavior/small_sample.csv}"
si=".venv/bin/session-intent"
"$si" prepare --source taobao --input "$raw" -o data/taobao.csv
rm -rf models/default
"$si" train --data data/taobao.csv --arch lstm_gru_small --timezone Asia/Shanghai -o models/default \
  --seed 0 --threads 1 --cache-dir cache/ \
  --data-licence "Taobao UserBehavior (Alibaba Tianchi dataset 649, Zhu et al. KDD 2018): no licence stated; research use only"
"$si" export models/default --data data/taobao.csv
# Test metrics with session-bootstrap CIs into the card (the full report: docs/evaluation/taobao).
"$si" evaluate --model models/default --data data/taobao.csv -o reports/default --update-card
