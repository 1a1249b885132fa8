"""The alert policy on test sessions (model/policy.py): each budget's threshold picked on validation
sessions, then applied to test sessions the model never saw, for the evaluation report's policy table."""

from __future__ import annotations

from typing import Any

import numpy as np

from model.data.dataset import Dataset, SessionClass, WindowSet
from model.evaluation.abandonment import RiskWindows
from model.policy import REPORT_BUDGETS, AlertPolicy, pick_policy, policy_outcomes, session_alert_scores, session_any
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
