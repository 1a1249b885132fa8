"""One cart rule (model/risk.py) in training, evaluation and serving: add_cart opens, order closes.

The Lua mirror in service/store/lua/append_event.lua is checked against model.risk on random sessions
through a real redis-server (tests/conftest.py `redis_url`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis.asyncio as aredis

from model.card import Thresholds
from model.data.dataset import Sessions, abandonment_targets, cart_so_far
from model.features import ACTION_INDEX, ADD_CART, N_ACTIONS, ORDER, EventLog
from model.risk import (
    CART_CLOSED,
    CART_NONE,
    CART_OPEN,
    INTENTS,
    abandonment_risk,
    alert_due,
    cart_states,
    cart_transition,
    click_alert_due,
    click_risk,
    intent_codes,
    intent_name,
)
from service.store.window_store import SessionWindowStore

T0 = 1_764_000_000.0


def fold(actions: list[int]) -> list[int]:
    """The scalar rule folded over one session: the state after each click."""
    states, state = [], CART_NONE
    for action in actions:
        state = cart_transition(state, action)
        states.append(state)
    return states


def sessions_of(runs: list[list[int]]) -> Sessions:
    actions = np.array([a for run in runs for a in run], dtype=np.int8)
    starts = np.cumsum([0] + [len(run) for run in runs[:-1]]).astype(np.int64)
    log = EventLog(actions=actions, ts=np.arange(len(actions), dtype=np.float64),
                   from_ad=np.zeros(len(actions), dtype=bool), starts=starts)
    return Sessions(ids=np.array([f"s{i}" for i in range(len(runs))], dtype=object), events=log)


def random_runs(rng: np.random.Generator, n: int) -> list[list[int]]:
    # Carts and orders far more often than in real logs, so every transition is exercised.
    weights = np.full(N_ACTIONS, 1.0)
    weights[[ADD_CART, ORDER]] = 4.0
    return [list(rng.choice(N_ACTIONS, size=int(rng.integers(1, 30)), p=weights / weights.sum())) for _ in range(n)]


def test_the_rule_in_words() -> None:
    view, cart, order = ACTION_INDEX["view_product"], ADD_CART, ORDER
    assert fold([view, cart, view, order, view]) == [CART_NONE, CART_OPEN, CART_OPEN, CART_CLOSED, CART_CLOSED]
    assert fold([cart, order, cart]) == [CART_OPEN, CART_CLOSED, CART_OPEN]  # a new cart after an order
    assert fold([view, order]) == [CART_NONE, CART_CLOSED]  # "buy now" without add_cart closes too


def test_vectorised_states_equal_the_scalar_fold_per_session() -> None:
    runs = random_runs(np.random.default_rng(0), 300)
    sessions = sessions_of(runs)
    expected = [s for run in runs for s in fold(run)]
    assert cart_states(sessions.events.actions, sessions.events.starts).tolist() == expected


def test_training_targets_follow_the_rule() -> None:
    view, cart, order = ACTION_INDEX["view_product"], ADD_CART, ORDER
    sessions = sessions_of([[view, cart, view, order, view], [view, cart, order, cart], [view, view]])
    assert cart_so_far(sessions).tolist() == [False, True, True, False, False, False, True, False, True, False, False]
    # The target: the session ends with its cart open; a buyer's prefixes, at and after the order, are 0.
    assert abandonment_targets(sessions).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0]


def test_after_an_order_the_risk_is_p_add_cart_times_no_order() -> None:
    open_after = cart_states([ADD_CART, ORDER]) == CART_OPEN
    risk = abandonment_risk([0.3, 0.3], [0.1, 0.1], open_after)
    np.testing.assert_allclose(risk, [0.9, 0.3 * 0.9])


def test_one_click_rules_equal_the_vectorised_ones() -> None:
    """The click path's plain-float risk, intent and alert rule give exactly the arrays' values, at the thresholds
    too (scores rounded to 6 decimals as served, and float32 model outputs as the tests pass them)."""
    rng = np.random.default_rng(7)
    thresholds = Thresholds(order=0.125, risk=0.25)
    p_add = np.round(rng.random(4000), 6)
    p_order = np.concatenate([np.round(rng.random(3990), 6), [0.125] * 5, np.float32([0.125, 0.1, 0.3, 0.7, 0.9])])
    cart = rng.random(4000) < 0.5
    risk = abandonment_risk(p_add, p_order, cart)
    risk[:5] = 0.25  # exactly at τ_risk
    codes = intent_codes(p_order, risk, thresholds)
    due = alert_due(risk, cart, thresholds.risk)
    for i in range(len(p_add)):
        assert click_risk(float(p_add[i]), float(p_order[i]), bool(cart[i])) == abandonment_risk(
            p_add[i], p_order[i], cart[i])
        assert intent_name(p_order[i], risk[i], thresholds) == INTENTS[codes[i]]
        assert click_alert_due(float(risk[i]), bool(cart[i]), thresholds.risk) == due[i]


@pytest.fixture()
async def store(redis_url: str) -> AsyncIterator[SessionWindowStore]:
    client = aredis.Redis.from_url(redis_url)
    yield SessionWindowStore(client, window=10)
    await client.aclose()


async def test_lua_and_python_agree_on_random_sessions(store: SessionWindowStore) -> None:
    runs = random_runs(np.random.default_rng(1), 60)
    for s, run in enumerate(runs):
        served = []
        for i, action in enumerate(run):
            appended = await store.append_event(f"cart-{s}", None, int(action), T0 + i, None)
            served.append(appended.cart_state)
            assert appended.cart_has_items == (appended.cart_state == CART_OPEN)
        assert served == fold(run), f"session {s}: {run}"
