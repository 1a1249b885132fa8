"""`evaluate --sweep`: the window-length sweep of the published Table 4, retrained here per N.

For each N in SWEEP_WINDOWS the small LSTM+GRU is trained with a short budget on the same session
split, then scored on test windows of all sessions and of the cart-abandonment sessions. The metric
is binary accuracy over both outputs at 0.5 (as published), with the all-zeros accuracy beside it,
because on a skewed label accuracy alone flatters any model.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from model.data.dataset import Dataset, SessionClass, Split, load_dataset
from model.data.published import SWEEP_WINDOWS, TABLE4_ALL_SESSIONS, TABLE4_CART_ABANDON
from model.evaluation.bootstrap import N_BOOT, bootstrap_estimates
from model.features import FeatureConfig
from model.training.checkpoint import predict_proba
from model.training.config import TrainConfig
from model.training.loop import train_model
from model.training.nets import LABELS, NetConfig

log = logging.getLogger(__name__)

SWEEP_ARCH = "lstm_gru_small"


def _scores(Y: np.ndarray, P: np.ndarray, session: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """Binary accuracy over both outputs with the all-zeros accuracy beside it, and per-label ROC/PR-AUC,
    all with session-bootstrap CIs (AUCs are null with a reason where a label has one class only)."""
    if len(Y) == 0:
        return {"n_windows": 0, "accuracy": None, "all_zeros_accuracy": None}
    pooled = bootstrap_estimates(
        Y.T.reshape(-1),
        P.T.reshape(-1),
        np.tile(session, 2),
        metrics=("accuracy", "all_zeros_accuracy"),
        n_boot=n_boot,
        seed=seed,
    )
    out: dict[str, Any] = {"n_windows": len(Y), **{name: e.to_dict() for name, e in pooled.items()}}
    for j, label in enumerate(LABELS):
        per_label = bootstrap_estimates(
            Y[:, j], P[:, j], session, metrics=("roc_auc", "pr_auc"), n_boot=n_boot, seed=seed
        )
        out[label] = {name: e.to_dict() for name, e in per_label.items()}
    return out


def sweep_point(dataset: Dataset, arch: str, train_cfg: TrainConfig, n_boot: int, seed: int) -> dict[str, Any]:
    """Train `arch` on one windowing of the data and score it on all test sessions and on the cart-abandon ones."""
    window = dataset.windows.window
    began = time.perf_counter()
    net, history = train_model(dataset, NetConfig.for_arch(arch, window=window), train_cfg, show_progress=False)
    test = dataset.part(Split.TEST)
    proba = predict_proba(net, test.view)  # type: ignore[arg-type]  # gathered batch by batch
    abandon = dataset.classes[test.session] == SessionClass.CART_ABANDONMENT
    return {
        "window": window,
        "all_sessions": _scores(test.Y, proba, test.session, n_boot, seed),
        "cart_abandon_sessions": _scores(test.Y[abandon], proba[abandon], test.session[abandon], n_boot, seed),
        "published_all_sessions_pct": TABLE4_ALL_SESSIONS.get(window),
        "published_cart_abandon_pct": TABLE4_CART_ABANDON.get(window),
        "epochs": len(history["train_loss"]),
        "stopped": history["stopped"],
        "seconds": time.perf_counter() - began,
    }


def run_sweep(
    data_path: Path,
    features: FeatureConfig,
    split_mode: str,
    train_minutes: float,
    seed: int,
    windows: tuple[int, ...] = SWEEP_WINDOWS,
    arch: str = SWEEP_ARCH,
    n_boot: int = N_BOOT,
    max_epochs: int = 30,
) -> dict[str, Any]:
    """One sweep point per N; each trains for at most `train_minutes` (expected cost: len(windows) × that)."""
    train_cfg = TrainConfig(epochs=max_epochs, seed=seed, max_minutes=train_minutes, patience=2)
    rows = []
    for window in windows:
        dataset = load_dataset(data_path, dataclasses.replace(features, window=window), split_mode=split_mode)
        rows.append(sweep_point(dataset, arch, train_cfg, n_boot, seed))
        log.info("sweep N=%d done in %.0f s", window, rows[-1]["seconds"])
    return {"arch": arch, "train_minutes_budget": train_minutes, "train_config": train_cfg.to_dict(), "points": rows}
