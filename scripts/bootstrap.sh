#!/usr/bin/env bash
# Create .venv and install session-intent with the given extras, pinned by constraints.txt.
#   bash scripts/bootstrap.sh            # serving only (no torch, no polars)
#   bash scripts/bootstrap.sh train,dev  # training + tests
# SI_TORCH_INDEX_URL: an index to take torch from, e.g. https://download.pytorch.org/whl/cpu for the CPU
# wheel where the default index would serve the multi-GB CUDA build. Unset: the default index (as pip is set up).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "bootstrap: $python not found: install Python 3.11 or newer (or set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: $("$python" -V 2>&1) is too old: session-intent needs Python 3.11 or newer (set PYTHON=...)" >&2
  exit 1
fi
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "bootstrap: $python has no venv/ensurepip: install it (Debian/Ubuntu: apt-get install python3-venv)" >&2
  exit 1
fi
"$python" -m venv .venv
pip=".venv/bin/pip"
"$pip" install -q --disable-pip-version-check --upgrade pip
if [[ ",$extras," == *",train,"* ]]; then
  # torch first, by exact version: a looser spec would pull a multi-GB CUDA build.
  torch_index=()
  [[ -n "${SI_TORCH_INDEX_URL:-}" ]] && torch_index=(--index-url "$SI_TORCH_INDEX_URL")
  "$pip" install -q "${torch_index[@]}" -c constraints.txt torch
fi
spec="."
[[ -n "$extras" ]] && spec=".[$extras]"
"$pip" install -q -c constraints.txt -e "$spec"
