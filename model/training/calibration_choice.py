"""Which windows each label's calibration is fitted on, chosen on VALIDATION (docs/training.md "Calibration").

Platt scaling fitted on validation alone follows validation's own base rate; on a small log that rate can sit
away from the traffic's (Taobao: 1,366 validation sessions, add_cart on 28.3 % of their windows, 25.1 % of
training's). Fitting on more windows steadies it. Per label, three sources compete:

- `none`: the network's own logits;
- `validation`: Platt on the validation windows (the earlier default);
- `train+validation`: Platt on a seeded sample of training windows (at most MAX_TRAIN_WINDOWS, scored with
  their ids, as validation is) beside the validation windows.

Each is scored by its out-of-fold ECE on validation: validation sessions are dealt into FOLDS folds, and each
fold is calibrated by a fit that never saw it (the training windows join every fit of `train+validation`).
The label keeps the source with the lowest score, then refits it on all its windows. Test is never read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model.evaluation.bootstrap import expected_calibration_error
from model.training.calibration import LabelCalibration, fit_label

NONE, VALIDATION, TRAIN_VALIDATION = "none", "validation", "train+validation"
CALIBRATION_SOURCES: tuple[str, ...] = (NONE, VALIDATION, TRAIN_VALIDATION)
CALIBRATION_FITS: tuple[str, ...] = ("auto", VALIDATION, TRAIN_VALIDATION)  # TrainConfig.calibration_fit
MAX_TRAIN_WINDOWS = 200_000
FOLDS = 5


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_source(
    source: str, val: np.ndarray, y_val: np.ndarray, train: np.ndarray, y_train: np.ndarray
) -> LabelCalibration:
    """One label's calibration from `source`: (n,) logits and 0/1 labels of validation and of training windows."""
    if source == NONE:
        return LabelCalibration(reason="no calibration had the lowest out-of-fold validation ECE")
    if source == VALIDATION:
        return fit_label(val, y_val)
    return fit_label(np.concatenate([train, val]), np.concatenate([y_train, y_val]))


def out_of_fold_ece(
    source: str, val: np.ndarray, y_val: np.ndarray, sessions: np.ndarray, train: np.ndarray, y_train: np.ndarray,
    seed: int = 0,
) -> float:
    """ECE on validation windows (n,) of `source`'s calibration, each fold of sessions calibrated by a fit that
    did not see it. sessions (n,) the window's session; train, y_train (m,) training logits and labels."""
    _, group = np.unique(sessions, return_inverse=True)
    fold = np.random.default_rng(seed).integers(0, FOLDS, size=group.max() + 1 if group.size else 0)[group]
    calibrated = np.asarray(val, dtype=np.float64).copy()
    if source != NONE:
        for k in range(FOLDS):
            held = fold == k
            if not held.any():
                continue
            fitted = fit_source(source, val[~held], y_val[~held], train, y_train)
            calibrated[held] = fitted.a * val[held] + fitted.b
    return expected_calibration_error(np.asarray(y_val, dtype=np.float64), _sigmoid(calibrated))


def choose_calibration(
    val: np.ndarray, y_val: np.ndarray, sessions: np.ndarray, train: np.ndarray, y_train: np.ndarray,
    fit: str = "auto", seed: int = 0,
) -> tuple[tuple[LabelCalibration, ...], dict[str, Any]]:
    """Per label of (n, 2) validation and (m, 2) training logits and labels: the calibration of the source with
    the lowest out-of-fold validation ECE (`fit` "auto"), or of the named source; and the record of the choice."""
    sources = CALIBRATION_SOURCES if fit == "auto" else (fit,)
    chosen, record = [], {}
    for j in range(val.shape[1]):
        scores = {s: out_of_fold_ece(s, val[:, j], y_val[:, j], sessions, train[:, j], y_train[:, j], seed)
                  for s in sources}  # fmt: skip
        best = min(scores, key=scores.__getitem__)
        chosen.append(fit_source(best, val[:, j], y_val[:, j], train[:, j], y_train[:, j]))
        record[j] = {"source": best, "val_oof_ece": scores}
    return tuple(chosen), {"fit": fit, "folds": FOLDS, "train_windows": int(train.shape[0]), "labels": record}
