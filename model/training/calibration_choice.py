"""Which windows each label's calibration is fitted on, chosen on VALIDATION (docs/training.md "Calibration").

Platt scaling fitted on validation alone follows validation's own base rate; on a small log that rate can sit
away from the traffic's (Taobao: 1,366 validation sessions, add_cart on 28.3 % of their windows, 25.1 % of
training's). Fitting on more windows steadies it. Per label, three sources compete:

- `none`: the network's own logits;
- `validation`: Platt on the validation windows (the earlier default);
- `train+validation`: Platt on a seeded sample of training windows (at most MAX_TRAIN_WINDOWS, scored with
  their ids, as validation is) beside the validation windows.

Each is scored by its out-of-fold ECE (`score`), over the sessions of one of two samples, dealt into FOLDS folds;
each fold is calibrated by a fit that never saw it:

- `validation`: the validation windows alone (the training windows join every fit of `train+validation`).
  Validation's sessions judge, so the fit on validation alone is judged on its own sample's base rate.
- `pooled` (the default): the training sample and the validation windows together, both fits leaving out the
  held fold's sessions of both parts. About 5.7 × the sessions of validation alone on Taobao (7,742 against
  1,366), so the base rate the criterion rewards is the labelled log's, not one small sample's. The training
  windows were seen by the network (early-stopped, so a few epochs), which flatters its own logits (`none`)
  there; docs/training.md "Calibration by pooled sessions" measures what that costs on validation.

The label keeps the source with the lowest score, then refits it on all its windows. Test is never read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model.evaluation.bootstrap import expected_calibration_error
from model.training.calibration import LabelCalibration, fit_label
from model.training.config import (
    AUTO,
    CALIBRATION_SCORES,
    CALIBRATION_SOURCES,
    CROSSFIT,
    NONE,
    POOLED,
    VALIDATION,
)

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
    seed: int = 0, train_sessions: np.ndarray | None = None,
) -> float:  # fmt: skip
    """Out-of-fold ECE of `source`'s calibration: val, y_val, sessions (n,) validation logits, 0/1 labels and
    sessions; train, y_train (m,) the training sample's. With `train_sessions` (m,) (sessions distinct from
    validation's) the training windows are scored too and folded with theirs (`pooled`); without, only
    validation's windows are scored and every fit sees all training windows (`validation`)."""
    pooled = train_sessions is not None
    logits = np.concatenate([val, train]) if pooled else np.asarray(val)
    labels = np.concatenate([y_val, y_train]) if pooled else np.asarray(y_val)
    groups = np.concatenate([sessions, train_sessions]) if pooled else np.asarray(sessions)  # type: ignore[list-item]
    _, group = np.unique(groups, return_inverse=True)
    fold = np.random.default_rng(seed).integers(0, FOLDS, size=group.max() + 1 if group.size else 0)[group]
    calibrated = np.asarray(logits, dtype=np.float64).copy()
    n_val, every_train = len(val), np.ones(len(train), dtype=bool)
    if source != NONE:
        for k in range(FOLDS):
            held = fold == k
            if not held.any():
                continue
            seen_val, seen_train = ~held[:n_val], ~held[n_val:] if pooled else every_train
            fitted = fit_source(source, val[seen_val], y_val[seen_val], train[seen_train], y_train[seen_train])
            calibrated[held] = fitted.a * logits[held] + fitted.b
    return expected_calibration_error(np.asarray(labels, dtype=np.float64), _sigmoid(calibrated))


def choose_calibration(
    val: np.ndarray, y_val: np.ndarray, sessions: np.ndarray, train: np.ndarray, y_train: np.ndarray,
    fit: str = AUTO, seed: int = 0, score: str = VALIDATION, train_sessions: np.ndarray | None = None,
) -> tuple[tuple[LabelCalibration, ...], dict[str, Any]]:  # fmt: skip
    """Per label of (n, 2) validation and (m, 2) training logits and labels: the calibration of the source with
    the lowest out-of-fold ECE under `score` (`fit` "auto"), or of the named source; and the record of the choice.
    sessions (n,) and train_sessions (m,): each window's session (train_sessions is needed for `pooled`)."""
    if score not in CALIBRATION_SCORES:
        raise ValueError(f"calibration score must be one of {CALIBRATION_SCORES}, got {score!r}")
    sources = CALIBRATION_SOURCES if fit == AUTO else (fit,)
    pooled = score in (POOLED, CROSSFIT)
    if pooled and train_sessions is None:
        raise ValueError(f"the {score} calibration score needs the training windows' sessions")
    judged_with = train_sessions if pooled else None
    chosen, record = [], {}
    for j in range(val.shape[1]):
        scores = {s: out_of_fold_ece(s, val[:, j], y_val[:, j], sessions, train[:, j], y_train[:, j], seed, judged_with)
                  for s in sources}  # fmt: skip
        best = min(scores, key=scores.__getitem__)
        chosen.append(fit_source(best, val[:, j], y_val[:, j], train[:, j], y_train[:, j]))
        record[j] = {"source": best, "oof_ece": scores}
    summary = {"fit": fit, "score": score, "folds": FOLDS, "train_windows": int(train.shape[0])}
    return tuple(chosen), {**summary, "labels": record}
