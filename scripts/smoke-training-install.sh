#!/usr/bin/env bash
# The data scientist's install, not the developer's: a venv with the `train` extra only (no test tools),
# as `bash scripts/bootstrap.sh train` makes it, then the whole road on a tiny synthetic log with ids:
# synth → train (with context) → export → evaluate → serve the new model and score a click.
# .ci/run runs it; exits non-zero on the first step that fails.
set -euo pipefail
# shellcheck source=scripts/smoke-lib.sh
source "$(dirname "$0")/smoke-lib.sh"
pip="$work/venv/bin/pip"
"$pip" install -q --disable-pip-version-check -c "$repo/constraints.txt" torch
"$pip" install -q --disable-pip-version-check -c "$repo/constraints.txt" "$repo[train]"
refuse_modules pytest locust aiohttp
si="$work/venv/bin/session-intent"
cd "$work"
"$si" synth --sessions 600 --seed 3 -o log.csv >/dev/null
"$si" train --data log.csv --arch lstm_gru_small --epochs 2 --threads 1 --context session+history -o models/shop >/dev/null
"$si" export models/shop --data log.csv >/dev/null
"$si" evaluate --model models/shop --data log.csv -o report >/dev/null
test -s report/report.md

port=$(free_port)
SI_MODEL_DIR="$work/models/shop" SI_PORT="$port" "$si" serve >serve.log 2>&1 &
server=$!
wait_ready "$port" serve.log
answer=$(curl -sf -X POST "localhost:$port/v1/sessions/s-1/events" -H 'content-type: application/json' \
  -d '{"event_id": "c-1", "action": "add_cart", "user_id": "u-1", "item_id": "i-1", "category_id": "c-1"}')
echo "click: $answer"
stop_server
echo "smoke: the training install ran synth, train, export, evaluate, and served the model it made"
