# Sourced by the smoke scripts: a temp dir ($work) with a venv, one background server ($server) stopped on
# exit, and the readiness wait every smoke step uses.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
python3 -m venv "$work/venv"

free_port() { "$work/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Refuse an install that pulled any of the given modules (a dependency of another set-up).
refuse_modules() {
  if "$work/venv/bin/python" - "$@" <<'PY'
import importlib.util, sys
sys.exit(not any(importlib.util.find_spec(m) for m in sys.argv[1:]))
PY
  then echo "smoke: the install pulled one of: $*" >&2; exit 1; fi
}

# Ready within 60 s on $1, giving up at once if $server died; else the log ($2) tail and exit 1.
wait_ready() {
  for _ in $(seq 60); do
    curl -sf "localhost:$1/readyz" >/dev/null && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 1
  done
  curl -sf "localhost:$1/readyz" >/dev/null && return 0
  echo "smoke: the server is not ready (exited, or not ready in 60 s); its log ends:" >&2
  tail -n 30 "$2" >&2
  exit 1
}

stop_server() { kill "$server" && wait "$server" || true; server=""; }
