#!/usr/bin/env bash
# The user's install, not the developer's: a venv built exactly as the Dockerfile builds the image's
# (`pip install -c constraints.txt .`, no extras), then `session-intent serve` from it in an empty
# directory (the model dir given as the image gives it), the README's click, its /risk, and a stop.
# Exits non-zero, with the server log's tail, if that install cannot serve. .ci/run runs it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -c "$repo/constraints.txt" "$repo"
# Nothing of the training or test set-up may have come along with it.
if "$work/venv/bin/python" -c 'import importlib.util as u, sys; sys.exit(not any(u.find_spec(m) for m in ("torch", "polars", "sklearn", "pytest")))'; then
  echo "smoke: the serving install pulled a training or test dependency" >&2
  exit 1
fi

port=$("$work/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir "$work/run"
(cd "$work/run" && SI_MODEL_DIR="$repo/models/default" SI_PORT="$port" exec "$work/venv/bin/session-intent" serve) \
  >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 60); do  # ready within 60 s, and give up at once if the server died
  curl -sf "localhost:$port/readyz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || break
  sleep 1
done
if ! curl -sf "localhost:$port/readyz" >/dev/null; then
  echo "smoke: the serving install is not ready (exited, or not ready in 60 s); its log ends:" >&2
  tail -n 30 "$work/serve.log" >&2
  exit 1
fi
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
kill "$server" && wait "$server" || true
server=""
echo "smoke: the serving install serves (pip install -c constraints.txt ., no extras)"
