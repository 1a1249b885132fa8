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

from collections.abc import Callable
from typing import Any

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


# Each rule below is written once, over values that may be numpy arrays or Python scalars, and takes the `select`
# it branches with: numpy's `where` for arrays (evaluation, training, shadow), `_pick` for one click (the click path),
# so a click pays no numpy call per rule. The array and one-click names are thin wrappers that only convert types.
Select = Callable[[Any, Any, Any], Any]


def _pick(condition: Any, if_true: Any, if_false: Any) -> Any:
    """`np.where` for one value: the click path's select, without numpy's cost per call."""
    return if_true if condition else if_false


def _risk_rule(p_add_cart: Any, p_make_order: Any, cart_has_items: Any, select: Select) -> Any:
    """(cart_has_items ? 1 : p_add_cart) × (1 − p_make_order); after an order closed the cart,
    cart_has_items is false, so the risk is p_add_cart × (1 − p_make_order)."""
    return select(cart_has_items, 1.0, p_add_cart) * (1.0 - p_make_order)


def _intent_rule(p_make_order: Any, risk: Any, thresholds: Thresholds, select: Select) -> Any:
    """purchase if p_make_order ≥ τ_order, else cart_abandonment if risk ≥ τ_risk, else browse."""
    return select(p_make_order >= thresholds.order, PURCHASE,
                  select(risk >= thresholds.risk, CART_ABANDONMENT, BROWSE))


def _alert_rule(risk: Any, cart_open: Any, threshold: float) -> Any:
    """A click raises a coupon alert when its cart is open and its risk reaches the policy's threshold
    (once per open cart: write_scores.lua mirrors this rule and remembers the alerted cart)."""
    return cart_open & (risk >= threshold)


def abandonment_risk(
    p_add_cart: npt.ArrayLike, p_make_order: npt.ArrayLike, cart_has_items: npt.ArrayLike
) -> np.ndarray:
    """`_risk_rule` over arrays, as float64."""
    return np.asarray(_risk_rule(np.asarray(p_add_cart, dtype=np.float64), np.asarray(p_make_order, dtype=np.float64),
                                 np.asarray(cart_has_items, dtype=bool), np.where))


def click_risk(p_add_cart: float, p_make_order: float, cart_has_items: bool) -> float:
    """`_risk_rule` of one click in Python floats: the same float64 operations as `abandonment_risk`, so the same
    value (tests/test_cart_semantics.py holds the two equal)."""
    return float(_risk_rule(float(p_add_cart), float(p_make_order), bool(cart_has_items), _pick))


def intent_codes(p_make_order: npt.ArrayLike, risk: npt.ArrayLike, thresholds: Thresholds) -> np.ndarray:
    """`_intent_rule` over arrays: int8 indexes into INTENTS."""
    codes = _intent_rule(np.asarray(p_make_order, dtype=np.float64), np.asarray(risk, dtype=np.float64), thresholds,
                         np.where)
    return np.asarray(codes, dtype=np.int8)


def intent_name(p_make_order: float, risk: float, thresholds: Thresholds) -> str:
    """`_intent_rule` of one click, compared as float64 in Python (no numpy per click)."""
    return INTENTS[_intent_rule(float(p_make_order), float(risk), thresholds, _pick)]


def decision_thresholds(card: ModelCard) -> Thresholds:
    """The thresholds serving applies: each policy's threshold where the card has it, else the F1 one.

    τ_order is the purchase policy's threshold (a precision target or budget on validation clicks), τ_risk the
    alert policy's (so the intent `cart_abandonment`, /v1/at-risk's default and the alerts agree)."""
    order = card.thresholds.order if card.purchase_policy is None else card.purchase_policy.threshold
    risk = card.thresholds.risk if card.policy is None else card.policy.threshold
    return Thresholds(order=order, risk=risk)


def alert_due(risk: npt.ArrayLike, cart_open: npt.ArrayLike, threshold: float) -> np.ndarray:
    """`_alert_rule` over arrays."""
    return np.asarray(_alert_rule(np.asarray(risk, dtype=np.float64), np.asarray(cart_open, dtype=bool), threshold))


def click_alert_due(risk: float, cart_open: bool, threshold: float) -> bool:
    """`_alert_rule` of one click, in Python floats."""
    return bool(_alert_rule(float(risk), bool(cart_open), threshold))
