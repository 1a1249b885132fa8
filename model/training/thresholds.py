"""Decision thresholds of docs/architecture.md §4, tuned on validation windows by F1 (never on test).

τ_order: p_make_order at or above it means `purchase`.
τ_risk: abandonment_risk (model/risk.py) at or above it means `cart_abandonment`.

Serving applies the policies' thresholds instead where the card has them (model.risk.decision_thresholds):
`validation_policy` (alerts, on validation sessions) and `validation_purchase_policy` (on validation clicks).
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

from model.card import Thresholds
from model.data.dataset import Dataset, WindowSet, abandonment_targets, cart_so_far
from model.policy import (
    DEFAULT_BUDGET,
    DEFAULT_PURCHASE_BUDGET,
    WINDOWS,
    AlertPolicy,
    pick_policy,
    session_alert_scores,
    session_any,
)
from model.risk import abandonment_risk

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5


def best_f1_threshold(y_true: np.ndarray, score: np.ndarray, name: str = "score") -> tuple[float, float]:
    """(threshold, F1) where predicting `score >= threshold` maximises F1; (0.5, nan) without positives."""
    y = np.asarray(y_true) > 0.5
    if not y.any() or y.all():
        log.warning(
            "%s: validation has %s positives, keeping threshold %.2f",
            name,
            "only" if y.all() else "no",
            DEFAULT_THRESHOLD,
        )
        return DEFAULT_THRESHOLD, float("nan")
    precision, recall, thresholds = precision_recall_curve(y, score)
    # The curve's last point (recall 0) has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(precision), where=denominator > 0)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def tune_thresholds(p_val: np.ndarray, y_val: np.ndarray, cart_so_far: np.ndarray, y_abandon: np.ndarray) -> Thresholds:
    """τ_order by F1 of make_order, τ_risk by F1 of abandonment_risk against the abandonment target.

    p_val, y_val (n, 2) [add_cart, make_order]; cart_so_far, y_abandon (n,) for the same windows.
    """
    tau_order, f1_order = best_f1_threshold(y_val[:, 1], p_val[:, 1], "make_order")
    risk = abandonment_risk(p_val[:, 0], p_val[:, 1], cart_so_far)
    tau_risk, f1_risk = best_f1_threshold(y_abandon, risk, "abandonment_risk")
    log.info(
        "thresholds: τ_order %.4f (val F1 %.4f), τ_risk %.4f (val F1 %.4f)", tau_order, f1_order, tau_risk, f1_risk
    )
    return Thresholds(order=tau_order, risk=tau_risk)


def abandonment_inputs(dataset: Dataset, windows: WindowSet) -> tuple[np.ndarray, np.ndarray]:
    """(cart_so_far (n,) bool, y_abandon (n,) float32) for the windows of a part of `dataset`.

    Both are per session, so they are computed on the part's own sessions: over the whole log their int64
    scratch arrays would take about 0.7 GiB at 20M events.
    """
    members = np.unique(windows.session)  # (s,) sorted ordinals into dataset.sessions
    keep = np.zeros(len(dataset.sessions), dtype=bool)
    keep[members] = True
    sessions = dataset.sessions.select(keep)  # the members, in their order
    rows = sessions.events.starts[np.searchsorted(members, windows.session)] + windows.position  # (n,)
    return cart_so_far(sessions)[rows], abandonment_targets(sessions)[rows]


def validation_metrics(
    p_val: np.ndarray, y_val: np.ndarray, cart: np.ndarray, y_abandon: np.ndarray, thresholds: Thresholds
) -> dict[str, dict[str, float | int | None]]:
    """Basic validation metrics for the card: per label ROC-AUC, PR-AUC, F1 at the tuned threshold.

    The full report with bootstrap CIs on the test split is `session-intent evaluate`'s job.
    """
    risk = abandonment_risk(p_val[:, 0], p_val[:, 1], cart)
    columns = {
        "add_cart": (y_val[:, 0], p_val[:, 0], None),
        "make_order": (y_val[:, 1], p_val[:, 1], thresholds.order),
        "abandonment_risk": (y_abandon, risk, thresholds.risk),
    }
    out: dict[str, dict[str, float | int | None]] = {}
    for name, (y_raw, score, tau) in columns.items():
        y = np.asarray(y_raw) > 0.5
        both = bool(y.any() and not y.all())
        out[name] = {
            "n": int(y.size),
            "positives": int(y.sum()),
            "roc_auc": float(roc_auc_score(y, score)) if both else None,
            "pr_auc": float(average_precision_score(y, score)) if both else None,
            "f1": float(f1_score(y, score >= tau)) if tau is not None and both else None,
            "threshold": tau,
        }
    return out


def session_policy_inputs(
    dataset: Dataset, windows: WindowSet, proba: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(score (S,), abandons (S,)) per session of `windows`: its alert score (model/policy.py) and whether it
    ends with its cart open. proba (n, 2) [add_cart, make_order] for the same windows."""
    cart, y_abandon = abandonment_inputs(dataset, windows)
    risk = abandonment_risk(proba[:, 0], proba[:, 1], cart)
    _, score = session_alert_scores(risk, cart, windows.session)
    return score, session_any(y_abandon > 0.5, windows.session)


def validation_policy(
    dataset: Dataset, val: WindowSet, p_val: np.ndarray, kind: str = "budget", target: float = DEFAULT_BUDGET
) -> AlertPolicy:
    """The alert policy picked on validation sessions (never on test)."""
    score, abandons = session_policy_inputs(dataset, val, p_val)
    policy = pick_policy(kind, target, score, abandons)
    log.info("alert policy %s: threshold %.4f, val alert share %.4f, precision %s, recall %s", policy.label,
             policy.threshold, policy.alert_share, policy.precision, policy.recall)
    return policy


def validation_purchase_policy(
    p_val: np.ndarray, y_val: np.ndarray, kind: str = "budget", target: float = DEFAULT_PURCHASE_BUDGET
) -> AlertPolicy:
    """The purchase policy picked on validation clicks (never on test): its threshold on p_make_order answers
    `purchase`. p_val, y_val (n, 2) [add_cart, make_order] of the validation windows."""
    policy = pick_policy(kind, target, p_val[:, 1], y_val[:, 1] > 0.5, unit=WINDOWS)
    log.info("purchase policy %s: threshold %.4f, val share %.4f, precision %s, recall %s", policy.label,
             policy.threshold, policy.alert_share, policy.precision, policy.recall)
    return policy
