"""Scores derived from the two model outputs (docs/architecture.md §4); one definition for evaluation and serving.

numpy only. Works on scalars and on arrays of any shape.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from model.card import Thresholds

INTENTS: tuple[str, ...] = ("browse", "cart_abandonment", "purchase")
BROWSE, CART_ABANDONMENT, PURCHASE = range(3)


def abandonment_risk(
    p_add_cart: npt.ArrayLike, p_make_order: npt.ArrayLike, cart_has_items: npt.ArrayLike
) -> np.ndarray:
    """(cart_has_items ? 1 : p_add_cart) × (1 − p_make_order)."""
    p_add = np.asarray(p_add_cart, dtype=np.float64)
    p_order = np.asarray(p_make_order, dtype=np.float64)
    cart = np.asarray(cart_has_items, dtype=bool)
    return np.where(cart, 1.0, p_add) * (1.0 - p_order)


def intent_codes(p_make_order: npt.ArrayLike, risk: npt.ArrayLike, thresholds: Thresholds) -> np.ndarray:
    """purchase if p_make_order ≥ τ_order, else cart_abandonment if risk ≥ τ_risk, else browse."""
    p_order = np.asarray(p_make_order, dtype=np.float64)
    risk_arr = np.asarray(risk, dtype=np.float64)
    codes = np.full(np.broadcast(p_order, risk_arr).shape, BROWSE, dtype=np.int8)
    codes[risk_arr >= thresholds.risk] = CART_ABANDONMENT
    codes[p_order >= thresholds.order] = PURCHASE
    return codes


def intent_name(p_make_order: float, risk: float, thresholds: Thresholds) -> str:
    return INTENTS[int(intent_codes(p_make_order, risk, thresholds))]
