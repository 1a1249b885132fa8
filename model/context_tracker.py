"""The incremental context of model/context.py, one click at a time: `ContextTracker` / `update_context`.

O(1) work per click, as serving keeps it in Redis (service/store/lua/context.lua): the reference the
train/serve parity tests hold both `compute_context` and the Lua to. The features, their order and the
cart semantics are model/context.py's and model/risk.py's; nothing here defines one.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from model.features import ADD_CART, ORDER
from model.risk import CART_OPEN, cart_transition


@dataclass
class SessionState:
    """Per-session state (serving: one hash and five sets per session, O(1) work per click)."""

    clicks: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0
    carts: int = 0
    orders: int = 0
    cart_state: int = 0  # model/risk.py CART_NONE / CART_OPEN / CART_CLOSED
    cart_opened_ts: float = 0.0
    seen_items: set[Hashable] = field(default_factory=set)
    seen_categories: set[Hashable] = field(default_factory=set)
    carted_items: set[Hashable] = field(default_factory=set)  # ever carted in this session
    open_items: set[Hashable] = field(default_factory=set)  # last cart/order op in this session: a cart
    closed_items: set[Hashable] = field(default_factory=set)  # last cart/order op in this session: an order
    history: tuple[float, ...] = (0.0,) * 6  # hist_sessions … hist_cart_items_open, frozen at the first click


@dataclass
class UserHistory:
    """Per-user record (serving: one hash and one set per user), updated only when a session starts.

    Holds the user's closed sessions folded together, and the newest session, still running, which is
    folded in when the user's next session starts: amortised O(1) per click, since each click's item
    enters `open_items` at most once per fold. Assumes a user's sessions do not overlap in time (the
    30-min gap rule guarantees it).
    """

    sessions: int = 0
    events: int = 0
    carts: int = 0
    orders: int = 0
    last_ts: float | None = None
    open_items: set[Hashable] = field(default_factory=set)  # carted in earlier sessions, not ordered since
    running: SessionState | None = None

    def fold_running(self) -> None:
        """Fold the running session into the closed history (at the user's next session start)."""
        s = self.running
        if s is None:
            return
        self.sessions, self.events, self.carts, self.orders = (
            self.sessions + 1,
            self.events + s.clicks,
            self.carts + s.carts,
            self.orders + s.orders,
        )
        self.last_ts = s.last_ts if self.last_ts is None else max(self.last_ts, s.last_ts)
        self.open_items |= s.open_items
        self.open_items -= s.closed_items
        self.running = None


def _known(value: Hashable | None) -> bool:
    return value is not None and not (isinstance(value, int | np.integer) and value < 0)


def start_session(ts: float, user: UserHistory | None) -> SessionState:
    """A fresh state for a session whose first click is at `ts`; folds the user's previous session first."""
    state = SessionState(first_ts=ts, last_ts=ts)
    if user is not None:
        user.fold_running()
        gap = ts - user.last_ts if user.last_ts is not None else 0.0
        state.history = (user.sessions, user.events, user.carts, user.orders, gap, len(user.open_items))
        user.running = state
    return state


def _move(item: Hashable, source: set[Hashable], target: set[Hashable]) -> None:
    """The item's last cart/order op is now `target`'s kind (open: a cart, closed: an order)."""
    source.discard(item)
    target.add(item)


def update_context(
    state: SessionState, user: UserHistory | None, action: int, ts: float,
    item: Hashable | None = None, category: Hashable | None = None,
) -> np.ndarray:  # fmt: skip
    """Apply one click to `state` and return its (CONTEXT_DIM,) float32 raw context (this click included)."""
    has_item = _known(item)
    seen_before = has_item and item in state.seen_items
    carted_before = has_item and item in state.carted_items
    state.clicks += 1
    state.last_ts = max(state.last_ts, ts)
    if has_item:
        state.seen_items.add(item)
    if _known(category):
        state.seen_categories.add(category)
    if action == ADD_CART:
        state.carts += 1
        if has_item:
            state.carted_items.add(item)
            _move(item, state.closed_items, state.open_items)
    elif action == ORDER:
        state.orders += 1
        if has_item:
            _move(item, state.open_items, state.closed_items)
    new_cart = cart_transition(state.cart_state, action)
    if new_cart == CART_OPEN and state.cart_state != CART_OPEN:
        state.cart_opened_ts = ts
    state.cart_state = new_cart
    is_open = new_cart == CART_OPEN
    in_hist_cart = user is not None and has_item and item in user.open_items
    values = (
        seen_before, carted_before, len(state.open_items), len(state.seen_items), len(state.seen_categories),
        state.clicks, max(ts - state.first_ts, 0.0), is_open, max(ts - state.cart_opened_ts, 0.0) if is_open else 0.0,
        *state.history, in_hist_cart,
    )  # fmt: skip
    return np.asarray(values, dtype=np.float32)


class ContextTracker:
    """Sessions and users by key, as serving keeps them in Redis; `click` returns the click's raw context."""

    def __init__(self) -> None:
        self.sessions: dict[Hashable, SessionState] = {}
        self.users: dict[Hashable, UserHistory] = {}

    def click(
        self, session: Hashable, user: Hashable | None, action: int, ts: float,
        item: Hashable | None = None, category: Hashable | None = None,
    ) -> np.ndarray:  # fmt: skip
        record = self.users.setdefault(user, UserHistory()) if _known(user) else None
        state = self.sessions.get(session)
        if state is None:
            state = self.sessions[session] = start_session(ts, record)
        return update_context(state, record, action, ts, item, category)
