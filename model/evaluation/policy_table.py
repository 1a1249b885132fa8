"""The policies on test data (model/policy.py), for the evaluation report's policy tables: the alert policy's
budgets picked on validation sessions and applied to test sessions, the purchase policy's targets picked on
validation clicks and applied to test clicks; the model never saw either."""

from __future__ import annotations

from typing import Any

import numpy as np

from model.data.dataset import Dataset, SessionClass, WindowSet
from model.evaluation.abandonment import RiskWindows
from model.policy import (
    REPORT_BUDGETS,
    REPORT_PURCHASE_TARGETS,
    WINDOWS,
    AlertPolicy,
    pick_policy,
    policy_outcomes,
    session_alert_scores,
    session_any,
)
from model.risk import alert_due
from model.training.thresholds import session_policy_inputs


def outcomes_on_test(rw: RiskWindows, threshold: float) -> dict[str, Any]:
    """What alerting at `threshold` does on test sessions: share alerted, precision, recall against "ends with
    the cart open", purchase sessions alerted before their order, browse sessions alerted."""
    sessions, score = session_alert_scores(rw.risk, rw.cart, rw.session)
    abandons = session_any(rw.abandons, rw.session)
    out = policy_outcomes(threshold, score, abandons)
    due = alert_due(rw.risk, rw.cart, threshold)
    before_order = session_any(due & rw.order_follows, rw.session)
    session_class = np.zeros(sessions.size, dtype=np.int64)
    session_class[np.searchsorted(sessions, rw.session)] = rw.session_class
    purchase, browse = session_class == SessionClass.PURCHASE, session_class == SessionClass.BROWSE
    alerted = score >= threshold
    out["purchase_alerted_before_order_share"] = float(before_order[purchase].mean()) if purchase.any() else None
    out["browse_alerted_share"] = float(alerted[browse].mean()) if browse.any() else None
    return out


def policy_table(
    dataset: Dataset, val: WindowSet, p_val: np.ndarray, rw: RiskWindows, card_policy: AlertPolicy | None
) -> dict[str, Any]:
    """One row per report budget (threshold picked on validation), and the card's own policy, on test."""
    score, abandons = session_policy_inputs(dataset, val, p_val)
    rows = []
    for budget in REPORT_BUDGETS:
        picked = pick_policy("budget", budget, score, abandons)
        rows.append({"policy": picked.to_dict(), "test": outcomes_on_test(rw, picked.threshold)})
    card_row = None if card_policy is None else {"policy": card_policy.to_dict(),
                                                   "test": outcomes_on_test(rw, card_policy.threshold)}
    return {"budgets": rows, "card": card_row}


def purchase_outcomes(threshold: float, test: WindowSet, p_test: np.ndarray) -> dict[str, Any]:
    """What answering `purchase` at p_make_order ≥ `threshold` does on test clicks: share, precision and recall
    against "an order follows in the session", and the share of sessions' first clicks answered so."""
    out = policy_outcomes(threshold, p_test[:, 1], test.Y[:, 1] > 0.5)
    first = test.position == 0
    out["first_click_share"] = float((p_test[first, 1] >= threshold).mean()) if first.any() else None
    return out


def purchase_table(
    val: WindowSet, p_val: np.ndarray, test: WindowSet, p_test: np.ndarray, card_policy: AlertPolicy | None
) -> dict[str, Any]:
    """One row per report target (threshold picked on validation clicks), and the card's own policy, on test."""
    rows = []
    for kind, target in REPORT_PURCHASE_TARGETS:
        picked = pick_policy(kind, target, p_val[:, 1], val.Y[:, 1] > 0.5, unit=WINDOWS)
        rows.append({"policy": picked.to_dict(), "test": purchase_outcomes(picked.threshold, test, p_test)})
    card_row = None if card_policy is None else {"policy": card_policy.to_dict(),
                                                   "test": purchase_outcomes(card_policy.threshold, test, p_test)}
    return {"targets": rows, "card": card_row}
