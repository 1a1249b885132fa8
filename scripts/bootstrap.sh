#!/usr/bin/env bash
# Create .venv and install session-intent with the given extras, pinned by constraints.txt.
#   bash scripts/bootstrap.sh            # serving only (no torch)
#   bash scripts/bootstrap.sh train,dev  # training + tests
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
pip=".venv/bin/pip"
"$pip" install -q --disable-pip-version-check --upgrade pip
if [[ ",$extras," == *",train,"* ]]; then
  # The CPU wheel first, by exact version: a looser spec would pull a multi-GB CUDA build.
  "$pip" install -q torch==2.13.0
fi
spec="."
[[ -n "$extras" ]] && spec=".[$extras]"
"$pip" install -q -c constraints.txt -e "$spec"
