"""Cross-fitted calibration (`--calibration-score crossfit`, model/training/crossfit.py): each training window's
logit comes from a fold net that never trained on its session, and the calibration is fitted and scored on those
beside validation's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from model.data.dataset import Dataset, Split
from model.training.calibration_choice import choose_calibration
from model.training.checkpoint import predict_logits
from model.training.config import TrainConfig
from model.training.crossfit import FOLDS, out_of_fold_logits, training_folds, without_fold
from model.training.loop import train_model
from tests.test_calibration import CONTEXT_NAMES, TINY_CONTEXT, dataset

__all__ = ["dataset"]  # test_calibration's fixture, used here by name

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CFG = TrainConfig(epochs=1, seed=0, calibration_score="crossfit")


def test_each_fold_net_trains_without_its_fold_and_validates_as_the_net_does(dataset: Dataset) -> None:
    fold_of = training_folds(dataset, seed=0)
    train_sessions = dataset.split == Split.TRAIN
    assert set(np.unique(fold_of[train_sessions])) == set(range(FOLDS))
    assert (fold_of[~train_sessions] == -1).all()
    val_windows = len(dataset.part(Split.VAL))
    for k in range(FOLDS):
        reduced = without_fold(dataset, fold_of, k)
        trained_on = set(np.unique(reduced.part(Split.TRAIN).session))
        assert trained_on.isdisjoint(np.flatnonzero(fold_of == k))
        assert trained_on == set(np.flatnonzero(train_sessions & (fold_of != k)))
        assert len(reduced.part(Split.VAL)) == val_windows
    assert (dataset.split[train_sessions] == Split.TRAIN).all()  # the dataset itself is left as it was


def test_the_crossfit_calibration_fits_on_out_of_fold_training_logits(dataset: Dataset) -> None:
    _, history = train_model(dataset, TINY_CONTEXT, CFG, show_progress=False)
    label_only = replace(CFG, calibrate=False)
    raw, _ = train_model(dataset, TINY_CONTEXT, label_only, show_progress=False)
    oof, y_train, sessions, best = out_of_fold_logits(
        dataset, lambda d: train_model(d, TINY_CONTEXT, label_only, show_progress=False), seed=0
    )
    train, val = dataset.part(Split.TRAIN), dataset.part(Split.VAL)
    assert len(oof) == len(train) and sorted(sessions.tolist()) == sorted(train.session.tolist())
    own = predict_logits(raw, train.X, train.contexts(slice(None), CONTEXT_NAMES))
    assert not np.allclose(np.sort(oof, axis=0), np.sort(own, axis=0), atol=1e-3)  # other nets' logits
    logits = predict_logits(raw, val.X, val.contexts(slice(None), CONTEXT_NAMES))
    calibration, choice = choose_calibration(logits, val.Y, val.session, oof, y_train, "auto", 0, "crossfit", sessions)
    record = history["calibration"]
    assert record["choice"]["score"] == "crossfit"
    assert record["choice"]["out_of_fold_nets"] == {"folds": FOLDS, "best_epochs": best}
    for j, (label, fitted) in enumerate(zip(("add_cart", "make_order"), calibration, strict=True)):
        assert record[label]["oof_ece"] == pytest.approx(choice["labels"][j]["oof_ece"], abs=1e-12)
        assert (record[label]["a"], record[label]["b"]) == pytest.approx((fitted.a, fitted.b), abs=1e-9)
