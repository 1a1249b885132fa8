#!/usr/bin/env bash
# The published-size model's p99 at 620 clicks/s and server CPU per click, before issue 20 (1508a9e: no context)
# and on this tree, side by side with the small default of each, in interleaved rounds
# (docs/benchmarks/published-before-after.md). Each tree serves a published-size stand-in built by its own code
# (bench service's: random weights, seed 7, exported with that tree's int8 recipe), so the comparison is what a
# deployment of each commit serves. About 11 minutes on 2 cores; run it with nothing else on the machine.
#   WORK (default a new temporary directory): where the old tree and the two stand-ins go.
# Needs a clone with its history (git archive 1508a9e) and the dev install: bash scripts/bootstrap.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
base_commit=1508a9e
work="${WORK:-$(mktemp -d)}"
py=.venv/bin/python
mkdir -p "$work/base"
git archive "$base_commit" | tar -x -C "$work/base"
# Each tree's own stand-in: 1508a9e's bench/service_models.py, this tree's bench/service/models.py.
PYTHONPATH="$work/base" PYTHONSAFEPATH=1 "$py" -c "
from pathlib import Path
from bench.service_models import published_model
published_model(Path('$work/base/models'), Path('$work/pub-before'))"
"$py" -c "
from pathlib import Path
from bench.service.models import published_model
published_model(Path('models'), Path('$work/pub-main'))"
.venv/bin/session-intent bench cpu-ab --config "before=@$work/base" --config main \
  --config "before-pub=@$work/base,SI_MODEL_DIR=$work/pub-before/lstm_gru-random" \
  --config "main-pub=SI_MODEL_DIR=$work/pub-main/lstm_gru-random" \
  --name published-before-after --rounds 4 --seconds 5 --warmup-s 3 --round-trip-s 0 --poisson-s 30 --rate 620 \
  --no-ids --sessions 20000 --profile-s 0
