"""The cart rule before and after issue 11, on the same model's test predictions.

Before: the cart flag turned on at the first add_cart and never off, the target was "a cart so far or
later, and no order after this prefix", and a session abandoned when it had an add_cart and no order.
After: model/risk.py (add_cart opens, order closes; the target is "the cart is open at the session's
end"). The old rule lives here only to report the change; nothing else uses it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from model.card import check_fingerprint
from model.data.dataset import Dataset, SessionClass, Split, WindowSet, load_dataset, prefix_targets
from model.evaluation.abandonment import RiskWindows, coupon_policy, time_to_detection
from model.features import ADD_CART
from model.training.checkpoint import load_model, predict_proba

log = logging.getLogger(__name__)


def rule_before(dataset: Dataset, windows: WindowSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cart, target, abandons) per window under the rule before issue 11."""
    ev = dataset.sessions.events
    seen = np.cumsum(ev.actions == ADD_CART)
    before_session = np.concatenate([[0], seen])[ev.starts][ev.session_of_event()]
    cart = (seen - before_session) > 0  # (E,) an add_cart at or before, never cleared
    later = prefix_targets(dataset.sessions)  # (E, 2) add_cart / order later in the session
    target = (cart | (later[:, 0] > 0)) & (later[:, 1] == 0)
    rows = ev.starts[windows.session] + windows.position
    abandons = dataset.classes[windows.session] == SessionClass.CART_ABANDONMENT
    return cart[rows], target[rows].astype(np.float32), abandons


def compare_cart_rules(model_dir: Path, data_path: Path, tau_before: float) -> dict[str, Any]:
    """Time to detection, the buyers' risk and the coupon table under both rules, at each rule's τ_risk
    (`tau_before`: the card's τ before the retrain; after: the retrained card's)."""
    net, card = load_model(model_dir)
    check_fingerprint(card.fingerprint, str(model_dir))
    split_mode = str(card.data.get("split") or "session")
    dataset = load_dataset(data_path, card.features, split_mode=split_mode)
    test = dataset.part(Split.TEST)
    proba = predict_proba(net, test.X)  # (n, 2)
    rules = {
        "before": (RiskWindows.build(dataset, test, proba, rule=rule_before(dataset, test)), tau_before),
        "after": (RiskWindows.build(dataset, test, proba), card.thresholds.risk),
    }
    return {
        "model": str(model_dir), "data": str(data_path), "split": split_mode,
        "n_test_sessions": int(np.unique(test.session).size), "n_test_windows": len(test.session),
        **{name: {"tau_risk": tau, "time_to_detection": time_to_detection(rw, tau), "coupon_policy": coupon_policy(rw)}
           for name, (rw, tau) in rules.items()},
    }
