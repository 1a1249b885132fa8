"""Post-hoc calibration (docs/training.md "Calibration"): per label, logit' = a · logit + b (Platt scaling),
fitted on VALIDATION logits after training and folded into the network's last Linear layer(s).

Folding keeps the exported graph, its inputs and outputs, the engine and serving exactly as they are: the
network simply outputs calibrated logits. With a > 0 the map is strictly increasing, so every ranking metric
(ROC-AUC, PR-AUC) is unchanged; a fit that gives a ≤ 0 (a label the network cannot rank) is not applied.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from model.evaluation.bootstrap import expected_calibration_error
from model.training.nets import LABELS, IntentNet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelCalibration:
    """logit' = a · logit + b for one label; `applied` false when the fit was refused (then a = 1, b = 0)."""

    a: float = 1.0
    b: float = 0.0
    applied: bool = False
    reason: str = ""


def fit_label(logits: np.ndarray, y: np.ndarray) -> LabelCalibration:
    """Platt scaling of (n,) logits against (n,) 0/1 labels: the a, b minimising the log loss."""
    y = np.asarray(y, dtype=np.int64)
    if y.size == 0 or y.min() == y.max():
        return LabelCalibration(reason="validation has one class only")
    # C large: an (almost) unregularised fit of two numbers on thousands of windows.
    fitted = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(logits, dtype=np.float64).reshape(-1, 1), y)
    a, b = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
    if not a > 0 or not np.isfinite(b):
        return LabelCalibration(reason=f"fitted a = {a:.4g} ≤ 0: the label's logits do not rank validation")
    return LabelCalibration(a, b, applied=True)


def fit_calibration(logits: np.ndarray, y: np.ndarray) -> tuple[LabelCalibration, ...]:
    """One LabelCalibration per label of (n, 2) logits and (n, 2) labels."""
    return tuple(fit_label(logits[:, j], y[:, j]) for j in range(logits.shape[1]))


def output_layers(net: IntentNet) -> list[nn.Linear]:
    """The Linear layers whose outputs sum to the logits: the head's last one, and the wide path if any."""
    head = net.head if isinstance(net.head, nn.Linear) else net.head[-1]  # type: ignore[index]
    assert isinstance(head, nn.Linear), type(head)
    wide = getattr(net, "wide", None)
    return [head, wide] if isinstance(wide, nn.Linear) else [head]


def fold_calibration(net: IntentNet, calibration: tuple[LabelCalibration, ...]) -> None:
    """Rewrite `net` in place so its logits become a · logit + b per label (W' = a·W, bias' = a·bias, + b once)."""
    scale = torch.tensor([c.a for c in calibration], dtype=torch.float32)  # (2,)
    shift = torch.tensor([c.b for c in calibration], dtype=torch.float32)  # (2,)
    layers = output_layers(net)
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(scale[:, None])
            layer.bias.mul_(scale)
        layers[0].bias.add_(shift)


def apply_calibration(logits: np.ndarray, calibration: tuple[LabelCalibration, ...]) -> np.ndarray:
    """(n, 2) logits → (n, 2) calibrated logits, outside the network (what the fold must equal)."""
    a = np.array([c.a for c in calibration], dtype=np.float64)
    b = np.array([c.b for c in calibration], dtype=np.float64)
    return (np.asarray(logits, dtype=np.float64) * a + b).astype(np.float32)



def remove_calibration(logits: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """(n, 2) logits of a calibrated net → the net's own, its card's folded a, b (`calibration_record`) undone."""
    a = np.array([record[label]["a"] for label in LABELS], dtype=np.float64)
    b = np.array([record[label]["b"] for label in LABELS], dtype=np.float64)
    return (np.asarray(logits, dtype=np.float64) - b) / a


def calibration_record(
    calibration: tuple[LabelCalibration, ...], logits: np.ndarray, y: np.ndarray
) -> dict[str, Any]:
    """What the card keeps: a, b per label, and the validation ECE before and after."""
    after = apply_calibration(logits, calibration)
    record: dict[str, Any] = {"fitted_on": "validation", "method": "platt: logit' = a * logit + b, folded"}
    for j, label in enumerate(LABELS):
        record[label] = {
            **asdict(calibration[j]),
            "val_ece_before": expected_calibration_error(y[:, j], 1.0 / (1.0 + np.exp(-logits[:, j]))),
            "val_ece_after": expected_calibration_error(y[:, j], 1.0 / (1.0 + np.exp(-after[:, j]))),
        }
    return record


def calibrate(
    net: IntentNet, logits: np.ndarray, y: np.ndarray, calibration: tuple[LabelCalibration, ...] | None = None,
    choice: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fold `calibration` (default: fitted on validation `logits` (n, 2) and labels `y` (n, 2)) into `net`; the
    card's record, with the validation ECE before and after and, when given, how the fit was chosen
    (model/training/calibration_choice.py)."""
    calibration = fit_calibration(logits, y) if calibration is None else calibration
    fold_calibration(net, calibration)
    record = calibration_record(calibration, logits, y)
    if choice is not None:
        if choice["fit"] != "validation":
            record["fitted_on"] = choice["fit"] if choice["fit"] != "auto" else "per label: its `source`"
        record["choice"] = {k: v for k, v in choice.items() if k != "labels"}
        for j, label in enumerate(LABELS):
            record[label].update(choice["labels"][j])
    log.info(
        "calibration (validation ECE before → after): %s",
        ", ".join(f"{label} [{record[label].get('source', 'validation')}] a={record[label]['a']:.3f} "
                  f"b={record[label]['b']:.3f} ECE "
                  f"{record[label]['val_ece_before']:.4f} → {record[label]['val_ece_after']:.4f}" for label in LABELS),
    )  # fmt: skip
    return record
