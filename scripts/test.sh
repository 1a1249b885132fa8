#!/usr/bin/env bash
# Set up and run every check: ruff, mypy and the test suite (real redis-server, real uvicorn, tiny models).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh train,dev
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python .ci/pip_audit.py  # known vulnerabilities fail; unreachable advisories are reported, see docs/reliability.md
set +e
.venv/bin/python -m pytest -q "$@"
status=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit $status
