#!/usr/bin/env bash
# Re-resolve every pinned version CI installs into constraints.txt, in a throwaway venv.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q torch==2.13.0
"$tmp/venv/bin/pip" install -q ".[train,dev]"
{
  echo "# Pinned versions of everything CI installs. Regenerate: bash scripts/refresh-constraints.sh"
  # No local version labels (torch's `+cpu`): public indexes carry none, and `==2.13.0` matches every build.
  "$tmp/venv/bin/pip" freeze --exclude session-intent | grep -v '^-e ' | sed -E 's/\+[A-Za-z0-9.]+$//'
} > constraints.txt
rm -rf "$tmp"
echo "wrote constraints.txt"
