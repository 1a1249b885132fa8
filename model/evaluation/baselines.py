"""Classic baselines on the same windows and the same session split as the networks (docs/architecture.md §6).

Each baseline sees exactly what the network sees: the last N raw vectors of the prefix, and the same
context features (model/context.py, scaled by its `scale_context`) where the network has them. Inputs
are the flattened window plus a few aggregates over it (events per action, dwell per action, how many
of the N steps hold an event), then the context. One classifier per label. Hyperparameters are fixed here, never tuned
on test; HistGradientBoosting stops early on the validation split, like the networks do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from model.context import scale_context
from model.data.dataset import WindowSet
from model.features import N_ACTIONS
from model.training.nets import LABELS

log = logging.getLogger(__name__)

BASELINES: tuple[str, ...] = ("majority", "logreg", "random_forest", "hist_gbm")
# Windows the baselines fit on at most: a random forest on 10M windows of 185 features would not fit in RAM.
MAX_FIT_WINDOWS = 500_000


def _estimators(seed: int) -> dict[str, Any]:
    """Small on purpose: all four fit in a few minutes on two shared cores."""
    return {
        # Predicts the training base rate for every window: AUC 0.5, accuracy = all-zeros accuracy.
        "majority": DummyClassifier(strategy="prior"),
        "logreg": make_pipeline(
            FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=1000, C=1.0)
        ),
        "random_forest": RandomForestClassifier(
            n_estimators=100, min_samples_leaf=5, max_samples=0.5, n_jobs=1, random_state=seed
        ),
        "hist_gbm": HistGradientBoostingClassifier(
            max_iter=300, learning_rate=0.1, early_stopping=True, n_iter_no_change=10, random_state=seed
        ),
    }


def window_features(X: np.ndarray) -> np.ndarray:
    """(n, N·16 + 12 + 12 + 1) float32: flattened raw window, then per-action event counts,
    per-action total dwell and the number of real (non-padding) events in the window."""
    dwell = X[..., :N_ACTIONS]  # (n, N, 12)
    counts = (dwell > 0).sum(axis=1)  # (n, 12)
    totals = dwell.sum(axis=1)  # (n, 12)
    real = (dwell.sum(axis=-1) > 0).sum(axis=1, keepdims=True)  # (n, 1)
    return np.hstack([X.reshape(len(X), -1), counts, totals, real]).astype(np.float32)


@dataclass
class Predictions:
    """A model's probabilities [add_cart, make_order] on the validation and test windows of one split."""

    name: str
    kind: str  # "trained" (the model evaluated), "compared" (another model directory) or "baseline"
    arch: str  # net arch, or the baseline's name
    val: np.ndarray  # (n_val, 2)
    test: np.ndarray  # (n_test, 2)
    fit_seconds: float | None = None
    notes: list[str] = field(default_factory=list)


def _fit_label(
    name: str, estimator: Any, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray
) -> tuple[ClassifierMixin, str | None]:
    """One label's fitted classifier; a constant base-rate one where training has a single class."""
    if np.unique(y).size < 2:
        note = f"{name}: the training windows hold one class only, so it predicts the base rate"
        return DummyClassifier(strategy="prior").fit(X, y), note
    model = clone(estimator)
    if isinstance(model, HistGradientBoostingClassifier) and np.unique(y_val).size == 2:
        model.fit(X, y, X_val=X_val, y_val=y_val)  # early stopping on the validation sessions
    else:
        model.fit(X, y)
    return model, None


def _positive_proba(model: ClassifierMixin, X: np.ndarray) -> np.ndarray:
    proba = model.predict_proba(X)  # type: ignore[attr-defined]
    classes = list(model.classes_)  # type: ignore[attr-defined]
    return proba[:, classes.index(1)] if 1 in classes else np.zeros(len(X))


def _sample(part: WindowSet, most: int, seed: int) -> WindowSet:
    """At most `most` windows of `part`, drawn without replacement (all of them when it is smaller)."""
    if len(part) <= most:
        return part
    keep = np.sort(np.random.default_rng(seed).choice(len(part), size=most, replace=False))
    return part.take(keep)


def _features(part: WindowSet, context: tuple[str, ...] = (), chunk: int = 65_536) -> np.ndarray:
    """window_features of every window, then its scaled context, gathered one chunk at a time."""

    def rows(index: slice) -> np.ndarray:
        scaled = scale_context(part.contexts(index, context), context)
        return np.hstack([window_features(part.windows(index)), scaled]).astype(np.float32)

    if len(part) == 0:
        return rows(slice(None))
    return np.concatenate([rows(slice(i, i + chunk)) for i in range(0, len(part), chunk)])


def run_baselines(
    train: WindowSet,
    val: WindowSet,
    test: WindowSet,
    names: tuple[str, ...] = BASELINES,
    seed: int = 0,
    max_fit_windows: int = MAX_FIT_WINDOWS,
    context: tuple[str, ...] = (),
) -> dict[str, Predictions]:
    """Fit each baseline on `train` (one classifier per label) and predict every `val` and `test` window.

    Logs bigger than `max_fit_windows` training windows fit on a seeded sample of that many (and
    early-stop on as many validation windows); each such baseline says so in its notes.
    """
    unknown = set(names) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; known: {BASELINES}")
    sampled = len(train) > max_fit_windows
    train, val_fit = _sample(train, max_fit_windows, seed), _sample(val, max_fit_windows, seed + 1)
    X_train, X_val_fit, X_val, X_test = (_features(part, context) for part in (train, val_fit, val, test))
    estimators = _estimators(seed)
    out: dict[str, Predictions] = {}
    for name in names:
        began = time.perf_counter()
        val_proba = np.zeros((len(val), train.Y.shape[1]), dtype=np.float64)
        test_proba = np.zeros((len(test), train.Y.shape[1]), dtype=np.float64)
        notes: list[str] = []
        for label in range(train.Y.shape[1]):
            y = train.Y[:, label].astype(np.int64)
            y_val = val_fit.Y[:, label].astype(np.int64)
            model, note = _fit_label(f"{name}/{LABELS[label]}", estimators[name], X_train, y, X_val_fit, y_val)
            if note:
                notes.append(note)
            val_proba[:, label] = _positive_proba(model, X_val)
            test_proba[:, label] = _positive_proba(model, X_test)
        if sampled:
            notes.append(f"{name}: fitted on a random {len(train):,} of the training windows (the log is bigger)")
        seconds = time.perf_counter() - began
        log.info("baseline %s: fitted and predicted in %.1f s", name, seconds)
        out[name] = Predictions(name, "baseline", name, val_proba, test_proba, seconds, notes)
    return out
