"""The trained network on the test log with its ids removed (issue 20): every click scored with the context
serving computes for a click sent without ids (model.context.context_without_ids), beside the normal scores.

Only for a model with context; a model without it scores the same either way. The intents are those serving
answers (model.risk.decision_thresholds), on every test window and on each session's first click.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from model.card import ModelCard
from model.context import context_without_ids
from model.data.dataset import Dataset, WindowSet
from model.evaluation.abandonment import RiskWindows, risk_auc
from model.evaluation.bootstrap import bootstrap_estimates
from model.risk import INTENTS, decision_thresholds, intent_codes
from model.training.checkpoint import load_net, predict_proba
from model.training.nets import LABELS


def without_ids(dataset: Dataset, part: WindowSet) -> WindowSet:
    """`part` with the context serving computes for its clicks sent without ids (model.context.context_without_ids)."""
    return replace(part, context=context_without_ids(dataset.sessions.events))


def idless_metrics(
    model_dir: Path, card: ModelCard, dataset: Dataset, test: WindowSet, p_with_ids: np.ndarray, n_boot: int, seed: int
) -> dict[str, Any] | None:
    """Test metrics with CIs of the network fed id-less context, and the intents with and without ids; None
    for a model without context."""
    names = tuple(card.context_names)
    if not names:
        return None
    idless = without_ids(dataset, test)
    p = predict_proba(load_net(model_dir), test.view, idless.contexts(slice(None), names))  # type: ignore[arg-type]
    labels = {
        label: {
            name: e.to_dict()
            for name, e in bootstrap_estimates(
                test.Y[:, j], p[:, j], test.session, metrics=("roc_auc", "pr_auc", "ece"), n_boot=n_boot, seed=seed
            ).items()
        }
        for j, label in enumerate(LABELS)
    }
    risk = RiskWindows.build(dataset, test, p)
    first = test.position == 0
    return {
        "labels": labels,
        "abandonment_roc_auc": risk_auc(risk, n_boot, seed)["roc_auc"].to_dict(),
        "intents": {
            "with_ids": _intent_shares(dataset, test, p_with_ids, card),
            "without_ids": _intent_shares(dataset, test, p, card),
        },
        "first_click_mean_p": {
            "with_ids": [float(v) for v in p_with_ids[first].mean(axis=0)],
            "without_ids": [float(v) for v in p[first].mean(axis=0)],
        },
    }


def _intent_shares(dataset: Dataset, test: WindowSet, proba: np.ndarray, card: ModelCard) -> dict[str, Any]:
    """Share of each served intent over all test windows and over each session's first click."""
    codes = intent_codes(proba[:, 1], RiskWindows.build(dataset, test, proba).risk, decision_thresholds(card))
    first = test.position == 0

    def shares(mask: np.ndarray) -> dict[str, float]:
        counts = np.bincount(codes[mask].astype(np.int64), minlength=len(INTENTS))
        return {name: float(c / max(mask.sum(), 1)) for name, c in zip(INTENTS, counts, strict=True)}

    return {"all_windows": shares(np.ones(len(test), dtype=bool)), "first_clicks": shares(first)}
