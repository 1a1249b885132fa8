"""`evaluate --folds K`: the published protocol's stratified group K-fold, grouped by session.

Each fold is the test set once; the next fold is its validation set (early stopping, thresholds) and
the other K − 2 folds train a fresh network of the evaluated model's architecture. Folds are made
with scikit-learn's StratifiedGroupKFold on windows, grouped by session and stratified by the
session's class, so no session has windows on two sides. Reported as mean ± std over folds.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from model.card import ModelCard
from model.data.dataset import Dataset, Split
from model.evaluation.baselines import Predictions, run_baselines
from model.evaluation.bootstrap import point_metrics
from model.training.checkpoint import load_net, predict_proba
from model.training.config import TrainConfig
from model.training.loop import train_model
from model.training.nets import LABELS
from model.training.thresholds import best_f1_threshold

log = logging.getLogger(__name__)

FOLD_METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "f1", "accuracy", "all_zeros_accuracy", "brier")


def session_folds(dataset: Dataset, k: int, seed: int) -> np.ndarray:
    """(S,) fold of each session, 0..k-1, from StratifiedGroupKFold over windows grouped by session."""
    windows = dataset.windows
    classes = dataset.classes[windows.session]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold = np.full(len(dataset.sessions), -1, dtype=np.int64)
    for i, (_, test_idx) in enumerate(splitter.split(np.zeros(len(windows)), classes, groups=windows.session)):
        fold[windows.session[test_idx]] = i
    return fold


def fold_split(fold: np.ndarray, i: int, k: int) -> np.ndarray:
    """(S,) Split for fold i: fold i is TEST, fold i+1 (mod k) is VAL, the rest TRAIN."""
    split = np.full(fold.shape, Split.TRAIN, dtype=np.int8)
    split[fold == i] = Split.TEST
    split[fold == (i + 1) % k] = Split.VAL
    return split


def _score(preds: Predictions, val_y: np.ndarray, test_y: np.ndarray) -> dict[str, dict[str, float | None]]:
    out = {}
    for j, label in enumerate(LABELS):
        threshold, _ = best_f1_threshold(val_y[:, j], preds.val[:, j], f"{preds.name}/{label}")
        values = point_metrics(test_y[:, j], preds.test[:, j], threshold)
        out[label] = {name: values[name] for name in FOLD_METRICS}
    return out


def _summarise(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """{label: {metric: {mean, std, min, max, n_folds}}} over the folds where the metric is defined."""
    summary: dict[str, Any] = {}
    for label in LABELS:
        summary[label] = {}
        for name in FOLD_METRICS:
            values = np.array([f[label][name] for f in per_fold if f[label][name] is not None], dtype=np.float64)
            summary[label][name] = (
                {
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                    "min": float(values.min()),
                    "max": float(values.max()),
                    "n_folds": int(values.size),
                }
                if values.size
                else {"mean": None, "std": None, "min": None, "max": None, "n_folds": 0}
            )
    return summary


def run_folds(
    dataset: Dataset, model_dir: Path, k: int, baselines: bool, train_minutes: float, seed: int
) -> dict[str, Any]:
    """Retrain the model's architecture (and the baselines) on each of k folds; mean ± std of test metrics."""
    if k < 3:
        raise ValueError(f"--folds needs at least 3 folds (test, validation, train), got {k}")
    net_cfg = load_net(model_dir).config
    card = ModelCard.load(model_dir)
    train_cfg = TrainConfig.from_dict({**card.hparams.get("train", {}), "max_minutes": train_minutes, "seed": seed})
    fold = session_folds(dataset, k, seed)
    per_model: dict[str, list[dict[str, Any]]] = {}
    seconds: dict[str, float] = {}
    for i in range(k):
        fold_data = dataclasses.replace(dataset, split=fold_split(fold, i, k))
        train, val, test = (fold_data.part(p) for p in (Split.TRAIN, Split.VAL, Split.TEST))
        net, history = train_model(fold_data, net_cfg, train_cfg, show_progress=False)
        fold_preds = {
            card.arch: Predictions(
                card.arch,
                "trained",
                card.arch,
                predict_proba(net, val.view, val.contexts(slice(None), net_cfg.context)),  # type: ignore[arg-type]
                predict_proba(net, test.view, test.contexts(slice(None), net_cfg.context)),  # type: ignore[arg-type]
                history["seconds"],
            )
        }
        if baselines:
            fold_preds.update(run_baselines(train, val, test, seed=seed, context=net_cfg.context))
        for name, preds in fold_preds.items():
            per_model.setdefault(name, []).append(_score(preds, val.Y, test.Y))
            seconds[name] = seconds.get(name, 0.0) + float(preds.fit_seconds or 0.0)
        log.info("fold %d/%d: %d test sessions, %d test windows", i + 1, k, int((fold == i).sum()), len(test))
    return {
        "k": k,
        "splitter": "sklearn StratifiedGroupKFold(groups=session, y=session class, shuffle, seed)",
        "validation": "the next fold (mod k)",
        "train_minutes_budget": train_minutes,
        "sessions_per_fold": np.bincount(fold, minlength=k).tolist(),
        "models": {
            name: {"summary": _summarise(folds), "per_fold": folds, "fit_seconds_total": seconds[name]}
            for name, folds in per_model.items()
        },
    }
