"""`session-intent export`: a trained model directory → `model.onnx`, `model.int8.onnx`, `model.fp16.onnx`.

- `model.onnx`: fp32, legacy (TorchScript) exporter so the recurrences stay whole LSTM/GRU ops, input
  `windows` (B, N, 16) raw float32 with a dynamic batch axis (and, for a model with context, `context`
  (B, C) raw float32 in the card's context order), output `probs` (B, 2) with the sigmoid in the graph.
  metadata_props carry the card, the layout and context fingerprints, N and the precision. Written only if
  ORT matches torch within 1e-4 on real windows (model/export/graphs.py).
- `model.int8.onnx`: the ORT quantization recipe that keeps the AUC drop per label within 0.002 on the
  validation windows and runs fastest on this CPU; none if no recipe does both (model/export/int8.py).
- `model.fp16.onnx`: fp16 weights and compute (fp32 inputs/outputs) for the CUDA provider (docs/architecture.md §7);
  the context's scaling stays fp32, since raw counts and seconds overflow fp16 (65504).

Every file is built in a scratch directory and moved into place only after its check passes; the results
go into the card (`card.extra["export"]`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from model.artifacts import CARD_FILE, FP16_FILE, FP32_FILE, INT8_FILE
from model.card import ModelCard, check_fingerprint
from model.context import check_context
from model.export.fp16 import export_fp16
from model.export.gates import AUC_DROP_BUDGET, MIN_SPEEDUP
from model.export.graphs import ExportParityError, export_fp32, onnx_probs
from model.export.inputs import GraphInputs
from model.export.int8 import export_int8
from model.training.checkpoint import load_model
from model.training.nets import LABELS

__all__ = [
    "AUC_DROP_BUDGET", "FP16_FILE", "FP32_FILE", "INT8_FILE", "ExportParityError", "ExportReport", "ValidationWindows",
    "export_model", "onnx_probs", "synthetic_validation", "validation_from_csv",
]  # fmt: skip

if TYPE_CHECKING:
    from model.data.dataset import WindowSet

logger = logging.getLogger(__name__)


@dataclass
class ValidationWindows:
    """Windows (and their context) and labels the parity and int8 checks score on, and where they came from."""

    X: np.ndarray  # (n, N, 16)
    Y: np.ndarray  # (n, 2)
    source: str  # "real" or "synthetic"
    name: str
    C: np.ndarray | None = None  # (n, k) raw context in the card's order; None for a model without context

    @property
    def inputs(self) -> GraphInputs:
        return GraphInputs(self.X, self.C)


@dataclass
class ExportReport:
    model_dir: str
    validation: dict[str, Any]
    fp32: dict[str, Any]
    int8: dict[str, Any]
    fp16: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)
    exported_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _file_info(path: Path) -> dict[str, Any]:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def export_model(model_dir: Path, val_windows: ValidationWindows | None = None,
                 min_int8_speedup: float = MIN_SPEEDUP) -> ExportReport:  # fmt: skip
    """Export `model_dir` (model.pt + card.json) to ONNX fp32, int8 and fp16; re-save the card with the results.

    `val_windows` default: synthetic windows (model.data.synth), and the report says the int8 check used them.
    `min_int8_speedup` 0 keeps the first int8 recipe within the AUC budget without timing any.
    """
    model_dir = Path(model_dir)
    net, card = load_model(model_dir)
    check_fingerprint(card.fingerprint, str(model_dir / CARD_FILE))
    names = check_context(card.context, str(model_dir / CARD_FILE))
    val = val_windows if val_windows is not None else synthetic_validation(card)
    _check_validation_context(val, names)
    if val.source != "real":
        logger.warning("int8 AUC check runs on synthetic windows (%s): pass --data for the real check", val.name)
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".export-") as scratch:
        work = Path(scratch)
        fp32_report = export_fp32(net, card, work / FP32_FILE, val.inputs)
        int8_report = export_int8(net, card, work, val.inputs, val.Y, min_int8_speedup)
        fp16_report = export_fp16(work / FP32_FILE, work / FP16_FILE, val.inputs, card)
        for name, part in ((FP32_FILE, fp32_report), (INT8_FILE, int8_report), (FP16_FILE, fp16_report)):
            if (work / name).is_file():
                part.update(_file_info(work / name))
                os.replace(work / name, model_dir / name)
            elif (model_dir / name).is_file():
                (model_dir / name).unlink()  # a stale file from an earlier export would not match model.pt
    report = ExportReport(
        model_dir=str(model_dir),
        validation={"source": val.source, "name": val.name, "n_windows": len(val.X),
                    "positives": {k: int(val.Y[:, i].sum()) for i, k in enumerate(LABELS)}},
        fp32=fp32_report, int8=int8_report, fp16=fp16_report,
        versions={"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    card.extra["export"] = report.to_dict()
    card.save(model_dir)
    return report


def _check_validation_context(val: ValidationWindows, names: tuple[str, ...]) -> None:
    """The validation windows carry the context the model takes (k columns), or none when it takes none."""
    k = 0 if val.C is None else val.C.shape[1]
    if k != len(names) or (val.C is not None and len(val.C) != len(val.X)):
        raise ValueError(f"the model takes context {list(names)} ({len(names)} columns), but the validation "
                         f"windows {val.name!r} carry {k} context columns for {len(val.X)} windows")  # fmt: skip


def validation_from_csv(card: ModelCard, csv: Path, max_windows: int = 50_000) -> ValidationWindows:
    """The validation split of `csv` as training split it (same split mode, same N and time zone),
    evenly thinned to `max_windows`. Warns when `csv` is not the file the model was trained on."""
    from model.data.dataset import Split, load_dataset

    split_mode = str(card.data.get("split", "session"))
    dataset = load_dataset(csv, card.features, split_mode)
    trained_on = card.data.get("sha256")
    if trained_on and trained_on != dataset.sha256:
        logger.warning("%s is not the file %s was trained on (%s): its validation split may hold training sessions",
                       csv, card.name, card.data.get("name"))  # fmt: skip
    val = dataset.part(Split.VAL)
    if len(val) == 0:
        raise ValueError(f"{csv} has no validation sessions to check int8 on")
    keep = np.linspace(0, len(val) - 1, num=min(max_windows, len(val)), dtype=np.int64)
    thinned = val.take(keep)  # gather only the kept windows, never the whole validation part
    return ValidationWindows(thinned.X, thinned.Y, "real", f"{dataset.name} ({split_mode} split, validation)",
                             _contexts_or_none(thinned, card))  # fmt: skip


def synthetic_validation(card: ModelCard, n_sessions: int = 3000, seed: int = 7) -> ValidationWindows:
    """Windows of freshly generated synthetic sessions, for an export run without --data."""
    from model.data.dataset import Sessions, build_windows, curate
    from model.data.synth import generate_sessions

    log = generate_sessions(n_sessions, seed)
    sessions = curate(Sessions(ids=log.session_ids, events=log.to_event_log()))
    windows = build_windows(sessions, card.features)
    return ValidationWindows(windows.X, windows.Y, "synthetic", f"model.data.synth seed {seed}, {n_sessions} sessions",
                             _contexts_or_none(windows, card))  # fmt: skip


def _contexts_or_none(windows: WindowSet, card: ModelCard) -> np.ndarray | None:
    """(n, k) raw context of the card's features for every window, or None for a model without context."""
    return windows.contexts(slice(None), card.context_names) if card.context_names else None
