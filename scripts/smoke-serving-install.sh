#!/usr/bin/env bash
# The user's install, not the developer's: a venv built exactly as the Dockerfile builds the image's
# (`pip install -c constraints.txt .`, no extras), then `session-intent serve` from it in an empty
# directory (the model dir given as the image gives it), the README's click, its /risk, and a stop.
# Exits non-zero, with the server log's tail, if that install cannot serve. .ci/run runs it.
set -euo pipefail
# shellcheck source=scripts/smoke-lib.sh
source "$(dirname "$0")/smoke-lib.sh"
"$work/venv/bin/pip" install -q --disable-pip-version-check -c "$repo/constraints.txt" "$repo"
# Nothing of the training or test set-up may have come along with it.
refuse_modules torch polars sklearn pytest

port=$(free_port)
mkdir "$work/run"
(cd "$work/run" && SI_MODEL_DIR="$repo/models/default" SI_PORT="$port" exec "$work/venv/bin/session-intent" serve) \
  >"$work/serve.log" 2>&1 &
server=$!
wait_ready "$port" "$work/serve.log"
click=$(curl -sf -X POST "localhost:$port/v1/sessions/s-8f3a1c/events" -H 'content-type: application/json' \
  -d '{"event_id": "c-0001", "action": "view_product", "from_ad": true}')
risk=$(curl -sf "localhost:$port/v1/sessions/s-8f3a1c/risk")
echo "click: $click"
echo "risk:  $risk"
"$work/venv/bin/python" - "$click" "$risk" <<'PY'
import json, sys
click, risk = (json.loads(text) for text in sys.argv[1:3])
assert click["event_index"] == risk["event_index"] == 0, (click, risk)
assert 0.0 <= risk["abandonment_risk"] <= 1.0 and risk["abandonment_risk"] == click["abandonment_risk"]
PY
stop_server
echo "smoke: the serving install serves (pip install -c constraints.txt ., no extras)"
