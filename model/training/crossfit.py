"""Out-of-fold logits on the training windows, for a calibration scored on pooled sessions (`crossfit`).

The network's logits on the windows it trained on are in-sample. Here the TRAINING sessions are dealt into
FOLDS random parts; for each part a net of the same recipe is trained without it (the part leaves the TRAIN split,
validation still early-stops it) and scores that part's windows. Every training window then has a logit from a
net that never saw it. The calibration (calibration_choice.py) fits and scores on those beside the trained net's
validation logits; the fold nets are then dropped. Costs FOLDS more trainings of the recipe (without a teacher).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from model.data.dataset import Dataset, Split
from model.training.checkpoint import predict_logits
from model.training.nets import IntentNet

FOLDS = 4


def training_folds(dataset: Dataset, seed: int, folds: int = FOLDS) -> np.ndarray:
    """(S,) fold of each TRAINING session (0 .. folds − 1), −1 for the other sessions; seeded."""
    fold_of = np.full(len(dataset.split), -1, dtype=np.int64)
    train_sessions = np.flatnonzero(dataset.split == Split.TRAIN)
    fold_of[train_sessions] = np.random.default_rng(seed).integers(0, folds, size=len(train_sessions))
    return fold_of


def without_fold(dataset: Dataset, fold_of: np.ndarray, k: int) -> Dataset:
    """The dataset with fold k's training sessions moved to TEST: out of training, out of validation."""
    split = dataset.split.copy()
    split[fold_of == k] = Split.TEST
    return dataclasses.replace(dataset, split=split)


def out_of_fold_logits(
    dataset: Dataset, train_net: Callable[[Dataset], tuple[IntentNet, dict[str, Any]]], seed: int, folds: int = FOLDS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """(m, 2) logits, (m, 2) labels and (m,) sessions of every TRAINING window, each scored by the net
    `train_net` trained without its fold; and each fold net's best epoch. Windows come fold by fold."""
    fold_of = training_folds(dataset, seed, folds)
    train = dataset.part(Split.TRAIN)
    logits, labels, sessions, best_epochs = [], [], [], []
    for k in range(folds):
        held = train.take(fold_of[train.session] == k)
        if len(held) == 0:
            continue
        net, history = train_net(without_fold(dataset, fold_of, k))
        logits.append(predict_logits(net, held.view, held.contexts(slice(None), net.config.context)))  # type: ignore[arg-type]
        labels.append(held.Y)
        sessions.append(held.session)
        best_epochs.append(int(history["best_epoch"]))
    return np.concatenate(logits), np.concatenate(labels), np.concatenate(sessions), best_epochs
