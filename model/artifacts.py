"""Artifact names: the files of a model directory, the metadata keys inside its ONNX graphs, and where
the committed default lives. Export writes these names and serving reads them; neither spells them out.

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

# Keys of the ONNX graph's metadata_props, written by export and checked by the engine before it serves.
META_FINGERPRINT = "fingerprint"
META_CARD = "card"
META_PRECISION = "precision"
META_WINDOW = "window"


def is_model_dir(path: Path) -> bool:
    """A directory with a card: something `evaluate`, `export` and `serve` can open."""
    return (Path(path) / CARD_FILE).is_file()
