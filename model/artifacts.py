"""Artifact names: the files of a model directory, the input and output names and metadata keys of its
ONNX graphs, and where the committed default lives. Export writes these names and serving reads them;
neither spells them out.

numpy-free and torch-free, so serving may import it (docs/architecture.md §11).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"

# Files of a model directory (docs/architecture.md §6).
CARD_FILE = "card.json"
WEIGHTS_FILE = "model.pt"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
FP16_FILE = "model.fp16.onnx"

# The ONNX graph's inputs: raw windows (B, N, 16) float32, and, only for a model whose card names context
# features, the raw context (B, C) float32 in the card's `context.names` order (model/context.py; the
# graph scales it itself). Its output: probabilities (B, 2).
INPUT_NAME = "windows"
CONTEXT_INPUT_NAME = "context"
OUTPUT_NAME = "probs"

# Keys of the ONNX graph's metadata_props, written by export (model/export/); the engine checks the
# fingerprints (layout, context) and N before it serves, and reports the precision.
META_FINGERPRINT = "fingerprint"
META_CONTEXT_FINGERPRINT = "context_fingerprint"  # model/context.py's fingerprint of the context names; "" for none
META_WINDOW = "window"
META_PRECISION = "precision"
META_ARCH = "arch"
META_NAME = "name"
META_LABELS = "labels"
META_CARD = "card"  # the whole card as JSON, for a human reading the file
META_INT8_RECIPE = "int8_recipe"  # the int8 file only


def is_model_dir(path: Path) -> bool:
    """A directory with a card: something `evaluate`, `export` and `serve` can open."""
    return (Path(path) / CARD_FILE).is_file()
