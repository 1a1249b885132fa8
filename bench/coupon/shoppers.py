"""The coupon simulation's shoppers: the synthetic generator's sessions (model/data/synth.py), played as visits.

The generator already has the notions a coupon engine needs: returning shoppers (Zipf-like activity, so a
few shoppers come back often and their history builds), a catalogue of items in categories, sessions that
browse a few items of one category and cart one of them. This module only turns its log into what the
simulation sends:

- each click carries the shopper's `user_id`, and its `item_id`/`category_id` where the page has one, with the
  generator's timestamps (so session and history durations are the generator's, not the run's);
- clicks whose action the model never saw in training (its card's `slot_coverage`) are left out: the
  committed default learned from a shop whose log has only product views, carts, favourites and orders, and
  a page type it never saw is noise to it, not behaviour;
- the generator's orders are left out: whether a carted visit ends in an order is the simulation's decision
  (a base chance, plus the coupon's effect), taken when the visit ends;
- a share of the browse-only visits is kept (`browse_share`): they raise no alert and only feed the
  shoppers' history, and they are nine in ten of the generator's sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model.features import ACTIONS

ADD_CART, ORDER = "add_cart", "order"


@dataclass(frozen=True)
class Visit:
    """One session of a shopper: its clicks (request bodies, in time order) and, when it carted, the order it
    would place."""

    session_id: str
    clicks: list[dict[str, Any]]
    order: dict[str, Any] | None  # the order click that would close its cart; None: it carted nothing


@dataclass
class Shopper:
    user_id: str
    visits: list[Visit] = field(default_factory=list)


def trained_actions(slot_coverage: dict[str, int]) -> frozenset[str]:
    """The actions the model saw in training (all of them when its card does not say)."""
    seen = frozenset(a for a, count in slot_coverage.items() if count > 0)
    return seen or frozenset(ACTIONS)


def build_shoppers(n_sessions: int, seed: int, actions: Iterable[str], browse_share: float = 1.0,
                   max_visits: int = 40, order_after_s: int = 60) -> list[Shopper]:
    """Shoppers with their visits in time order, most visits first (the longest chains should start first)."""
    from model.data.synth import generate_sessions

    log = generate_sessions(n_sessions, seed)
    allowed = np.isin(np.array(ACTIONS)[log.actions], sorted(set(actions) - {ORDER}))
    keep_browse = np.random.default_rng([seed, 21]).random(len(log.starts)) < browse_share
    bounds = np.append(log.starts, len(log.actions))
    shoppers: dict[int, Shopper] = {}
    for s in range(len(log.starts)):
        lo, hi = int(bounds[s]), int(bounds[s + 1])
        clicks = [_click(log, e) for e in range(lo, hi) if allowed[e]]
        carted = [c for c in clicks if c["action"] == ADD_CART]
        if not clicks or (not carted and not keep_browse[s]):
            continue
        order = None
        if carted:  # the generator's orders buy the item of the session's first add_cart
            order = {**carted[0], "action": ORDER, "ts": clicks[-1]["ts"] + order_after_s}
        user = int(log.users[s])
        shopper = shoppers.setdefault(user, Shopper(f"u{user}"))
        for click in clicks:
            click["user_id"] = shopper.user_id
        if order is not None:
            order["user_id"] = shopper.user_id
        if len(shopper.visits) < max_visits:
            shopper.visits.append(Visit(f"sim-{log.session_ids[s]}", clicks, order))
    return sorted(shoppers.values(), key=lambda sh: -len(sh.visits))


def _click(log: Any, e: int) -> dict[str, Any]:
    action = ACTIONS[int(log.actions[e])]
    click: dict[str, Any] = {"action": action, "ts": int(log.ts[e])}
    if log.items[e] >= 0:
        click["item_id"] = f"i{int(log.items[e])}"
    if log.categories[e] >= 0:
        click["category_id"] = f"c{int(log.categories[e])}"
    return click


def population_facts(shoppers: list[Shopper]) -> dict[str, Any]:
    """Counts the report states: shoppers, visits, carted visits, clicks, returning shoppers."""
    visits = [v for sh in shoppers for v in sh.visits]
    return {
        "shoppers": len(shoppers),
        "returning_shoppers": sum(len(sh.visits) > 1 for sh in shoppers),
        "visits": len(visits),
        "carted_visits": sum(v.order is not None for v in visits),
        "clicks": sum(len(v.clicks) for v in visits),
    }
