"""Scores derived from the two model outputs (docs/architecture.md §4); one definition for evaluation and serving.

numpy only. Works on scalars and on arrays of any shape.

Cart semantics (the one definition; docs/service.md "When is a cart open"). A session's cart is in one
of three states, driven by its clicks in arrival order:

    CART_NONE    no add_cart yet
    CART_OPEN    add_cart opened it (from any state: an add_cart after an order opens a new cart)
    CART_CLOSED  an order closed it (from any state: a "buy now" order without add_cart also closes)

Every other action leaves the state as it is. `cart_transition` is the scalar step that
service/store/lua/append_event.lua mirrors (tests/test_cart_semantics.py checks both agree on random
sessions against a real Redis); `cart_states` is the same rule over a whole event log. The state covers
the whole session, not only the model's window of N events.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from model.card import ModelCard, Thresholds
from model.features import ADD_CART, ORDER

INTENTS: tuple[str, ...] = ("browse", "cart_abandonment", "purchase")
BROWSE, CART_ABANDONMENT, PURCHASE = range(3)

CART_NONE, CART_OPEN, CART_CLOSED = 0, 1, 2
CART_STATES: tuple[str, ...] = ("none", "open", "closed")  # names by state


def cart_transition(state: int, action: int) -> int:
    """The cart state after one click: add_cart opens, order closes, anything else keeps."""
    if action == ADD_CART:
        return CART_OPEN
    if action == ORDER:
        return CART_CLOSED
    return state


def cart_states(actions: npt.ArrayLike, starts: npt.ArrayLike | None = None) -> np.ndarray:
    """(E,) int8 cart state after each event; `cart_transition` folded over each session, vectorised.

    actions (E,) action indexes of sessions laid end to end; starts (S,) first event of each session
    (default: one session). The state after event e is set by the newest add_cart or order of e's
    session at or before e.
    """
    acts = np.asarray(actions)
    n = acts.shape[0]
    first = np.zeros(n, dtype=np.int64)
    if starts is not None and n:
        starts_arr = np.asarray(starts, dtype=np.int64)
        # (E,) the start of each event's session
        first = starts_arr[np.searchsorted(starts_arr, np.arange(n), side="right") - 1]
    moves = (acts == ADD_CART) | (acts == ORDER)
    last_move = np.maximum.accumulate(np.where(moves, np.arange(n), -1)) if n else np.zeros(0, dtype=np.int64)
    states = np.full(n, CART_NONE, dtype=np.int8)
    seen = last_move >= first  # a move inside this event's own session
    states[seen] = np.where(acts[last_move[seen]] == ADD_CART, CART_OPEN, CART_CLOSED)
    return states


def cart_open_after(actions: npt.ArrayLike, starts: npt.ArrayLike | None = None) -> np.ndarray:
    """(E,) bool: the cart is open after each event (the `cart_has_items` of `abandonment_risk`)."""
    return cart_states(actions, starts) == CART_OPEN


def abandonment_risk(
    p_add_cart: npt.ArrayLike, p_make_order: npt.ArrayLike, cart_has_items: npt.ArrayLike
) -> np.ndarray:
    """(cart_has_items ? 1 : p_add_cart) × (1 − p_make_order); after an order closed the cart,
    cart_has_items is false, so the risk is p_add_cart × (1 − p_make_order)."""
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


def click_risk(p_add_cart: float, p_make_order: float, cart_has_items: bool) -> float:
    """`abandonment_risk` of one click in Python floats: the same float64 operations, so the same value, without
    numpy's cost per call on the click path (tests/test_cart_semantics.py holds the two equal)."""
    return (1.0 if cart_has_items else float(p_add_cart)) * (1.0 - float(p_make_order))


def intent_name(p_make_order: float, risk: float, thresholds: Thresholds) -> str:
    """`intent_codes` of one click, compared as float64 in Python (no numpy per click)."""
    if float(p_make_order) >= thresholds.order:
        return INTENTS[PURCHASE]
    if float(risk) >= thresholds.risk:
        return INTENTS[CART_ABANDONMENT]
    return INTENTS[BROWSE]


def decision_thresholds(card: ModelCard) -> Thresholds:
    """The thresholds serving applies: each policy's threshold where the card has it, else the F1 one.

    τ_order is the purchase policy's threshold (a precision target or budget on validation clicks), τ_risk the
    alert policy's (so the intent `cart_abandonment`, /v1/at-risk's default and the alerts agree)."""
    order = card.thresholds.order if card.purchase_policy is None else card.purchase_policy.threshold
    risk = card.thresholds.risk if card.policy is None else card.policy.threshold
    return Thresholds(order=order, risk=risk)


def alert_due(risk: npt.ArrayLike, cart_open: npt.ArrayLike, threshold: float) -> np.ndarray:
    """A click raises a coupon alert when its cart is open and its risk reaches the policy's threshold
    (once per open cart: write_scores.lua mirrors this rule and remembers the alerted cart)."""
    return np.asarray(cart_open, dtype=bool) & (np.asarray(risk, dtype=np.float64) >= threshold)


def click_alert_due(risk: float, cart_open: bool, threshold: float) -> bool:
    """`alert_due` of one click, in Python floats."""
    return bool(cart_open) and float(risk) >= threshold
