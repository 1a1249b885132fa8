"""The published-size model for the service benchmark, found or made within a bounded time.

The committed models/default is the small `lstm_gru_small`. The published-size `lstm_gru` is not
committed (7 MB of weights), so, as `bench engine` does (bench/engine/run.py), this takes a trained one from
`models/` when there is one, else builds the architecture with seeded random weights and the default's
context (so both sizes take the inputs the service feeds). Serving cost
does not depend on the weights' values: the graph, its sizes and the int8 recipe are the same. Either
way it is exported to ONNX (fp32 + int8) in a scratch directory, and the report says which it was.
"""

from __future__ import annotations

import logging
from pathlib import Path

from model.artifacts import FP32_FILE, INT8_FILE, REPO_ROOT

log = logging.getLogger(__name__)

PUBLISHED_ARCH = "lstm_gru"
SEED = 7
VALIDATION_SESSIONS = 400


def published_model(models_root: Path, work: Path) -> tuple[Path, str]:
    """(an exported model directory of the published-size arch, where its weights came from)."""
    from bench.engine.run import materialise, served_context
    from model.card import ModelCard
    from model.export.exporter import export_model, synthetic_validation

    model_dir, source = materialise(PUBLISHED_ARCH, models_root, work, SEED, None, served_context())
    if not (model_dir / FP32_FILE).is_file():
        # Bounded: a small synthetic validation set for the parity and int8 checks, and min_int8_speedup 0
        # keeps the first int8 recipe within the AUC budget without timing every recipe.
        val = synthetic_validation(ModelCard.load(model_dir), n_sessions=VALIDATION_SESSIONS, seed=SEED)
        report = export_model(model_dir, val, min_int8_speedup=0.0)
        if not (model_dir / INT8_FILE).is_file():
            source += f"; int8 not exported ({report.int8.get('reason', 'see its card')}), so the service runs fp32"
    source = source.replace(f"{REPO_ROOT}/", "")  # the report names paths as a clone sees them
    log.info("published-size model: %s", source)
    return model_dir, source
