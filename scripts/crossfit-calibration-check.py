"""Cross-fitted calibration check for a trained model directory (docs/training.md): validation and out-of-fold
training figures only, test is never read.

  .venv/bin/python scripts/crossfit-calibration-check.py fold K   (K = 0 .. FOLDS-1; run each, two at a time)
  .venv/bin/python scripts/crossfit-calibration-check.py score

`fold K` trains the model's recipe (lstm_gru_small, its context, context dropout 0.2, seed 0, no calibration)
without the K-th of FOLDS random parts of the TRAINING sessions and saves its logits on that part: every training
window then has a logit from a net that never saw it. `score` puts those beside the model's own uncalibrated
validation logits (its folded Platt inverted) and prints, per label and calibration source, the out-of-fold ECE
over the pooled sessions (`model.training.calibration_choice.out_of_fold_ece`) and over validation's alone.
Environment: MODEL (models/default), DATA (data/taobao.csv), OUT (/tmp/crossfit), CACHE (cache).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np

from model.card import ModelCard
from model.data.dataset import Dataset, Split, load_dataset
from model.training.calibration import remove_calibration
from model.training.calibration_choice import CALIBRATION_SOURCES, fit_source, out_of_fold_ece
from model.training.checkpoint import load_model, predict_logits
from model.training.config import TrainConfig
from model.training.crossfit import FOLDS, training_folds, without_fold
from model.training.loop import train_model
from model.training.nets import LABELS, NetConfig

MODEL = Path(os.environ.get("MODEL", "models/default"))
OUT = Path(os.environ.get("OUT", "/tmp/crossfit"))
log = logging.getLogger("crossfit-calibration-check")


def train_fold(dataset: Dataset, card: ModelCard, fold_of: np.ndarray, k: int) -> None:
    """Train without fold k's training sessions (moved out of TRAIN) and save the logits on them."""
    cfg = TrainConfig(epochs=30, batch_size=256, lr=1e-3, patience=4, seed=0, threads=1, context_dropout=0.2,
                      calibrate=False)  # fmt: skip
    net_cfg = NetConfig.for_arch(card.arch, window=card.features.window, context=card.context_names)
    net, history = train_model(without_fold(dataset, fold_of, k), net_cfg, cfg, show_progress=False)
    held = dataset.part(Split.TRAIN)
    held = held.take(fold_of[held.session] == k)
    logits = predict_logits(net, held.view, held.contexts(slice(None), card.context_names))  # type: ignore[arg-type]
    np.savez(OUT / f"fold{k}.npz", z=logits, y=held.Y, s=held.session)
    log.info("fold %d: %d held-out windows, best epoch %d, validation make_order PR-AUC %.4f",
             k, len(held), history["best_epoch"], history["best_val_pr_auc"])  # fmt: skip


def score(dataset: Dataset, card: ModelCard) -> None:
    parts = [np.load(OUT / f"fold{k}.npz") for k in range(FOLDS)]
    z_train, y_train, s_train = (np.concatenate([p[key] for p in parts]) for key in ("z", "y", "s"))
    net, _ = load_model(MODEL)
    val = dataset.part(Split.VAL)
    folded = predict_logits(net, val.view, val.contexts(slice(None), card.context_names)).astype(np.float64)  # type: ignore[arg-type]
    z_val = remove_calibration(folded, card.extra["history"]["calibration"])
    log.info("windows: %d training (out of fold), %d validation", len(z_train), len(z_val))
    for j, label in enumerate(LABELS):
        log.info("%s rate: training %.4f, validation %.4f", label, y_train[:, j].mean(), val.Y[:, j].mean())
        for source in CALIBRATION_SOURCES:
            args = (source, z_val[:, j], val.Y[:, j], val.session, z_train[:, j], y_train[:, j], 0)
            pooled, alone = out_of_fold_ece(*args, s_train), out_of_fold_ece(*args, None)
            fit = fit_source(source, z_val[:, j], val.Y[:, j], z_train[:, j], y_train[:, j])
            log.info("%s %s: out-of-fold ECE pooled %.4f, validation's sessions %.4f; fit on all: a %.3f, b %.3f",
                     label, source, pooled, alone, fit.a, fit.b)  # fmt: skip


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    card = ModelCard.load(MODEL)
    cache = Path(os.environ.get("CACHE", "cache"))
    dataset = load_dataset(Path(os.environ.get("DATA", "data/taobao.csv")), card.features, "session", cache)
    fold_of = training_folds(dataset, seed=0)  # the folds `train --calibration-score crossfit` deals at seed 0
    if sys.argv[1:2] == ["fold"]:
        train_fold(dataset, card, fold_of, int(sys.argv[2]))
    else:
        score(dataset, card)


if __name__ == "__main__":
    main()
