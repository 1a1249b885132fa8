#!/usr/bin/env bash
# The data scientist's install, not the developer's: a venv with the `train` extra only (no test tools),
# as `bash scripts/bootstrap.sh train` makes it, then the whole road on a tiny synthetic log with ids:
# synth → train → export → evaluate → serve the new model and score a click.
# .ci/run runs it; exits non-zero on the first step that fails.
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
pip="$work/venv/bin/pip"
"$pip" install -q --disable-pip-version-check -c "$repo/constraints.txt" torch
"$pip" install -q --disable-pip-version-check -c "$repo/constraints.txt" "$repo[train]"
if "$work/venv/bin/python" -c 'import importlib.util as u, sys; sys.exit(not any(u.find_spec(m) for m in ("pytest", "locust", "aiohttp")))'; then
  echo "smoke: the training install pulled a test dependency" >&2
  exit 1
fi
si="$work/venv/bin/session-intent"
cd "$work"
"$si" synth --sessions 600 --seed 3 -o log.csv >/dev/null
"$si" train --data log.csv --arch lstm_gru_small --epochs 2 --threads 1 -o models/shop >/dev/null
"$si" export models/shop --data log.csv >/dev/null
"$si" evaluate --model models/shop --data log.csv -o report >/dev/null
test -s report/report.md

port=$("$work/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SI_MODEL_DIR="$work/models/shop" SI_PORT="$port" "$si" serve >serve.log 2>&1 &
server=$!
for _ in $(seq 60); do
  curl -sf "localhost:$port/readyz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || break
  sleep 1
done
curl -sf "localhost:$port/readyz" >/dev/null || { tail -n 30 serve.log >&2; echo "smoke: the trained model does not serve" >&2; exit 1; }
answer=$(curl -sf -X POST "localhost:$port/v1/sessions/s-1/events" -H 'content-type: application/json' \
  -d '{"event_id": "c-1", "action": "add_cart"}')
echo "click: $answer"
kill "$server" && wait "$server" || true
server=""
echo "smoke: the training install ran synth, train, export, evaluate, and served the model it made"
