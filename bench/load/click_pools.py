"""The pools the load generators draw clicks from: sessions, shoppers, items and categories (one definition).

The open-loop generator (open_loop.py) reads them here; wrk's Lua scripts (loadtest/wrk_events.lua,
loadtest/wrk_events_ids.lua) cannot import Python, so `run_wrk` hands them over as SI_WRK_* variables on every
run (`wrk_env`). The scripts' own fallbacks serve hand-run `wrk` only; tests/test_click_pools.py holds them equal
to these.

Bounded pools, so that the Redis state reaches a steady size: a tenth as many shoppers as sessions, so each
shopper returns for about ten sessions (their history is read and folded); each session browses its own shelf
of SHELF items out of ITEMS, so items are seen again within a session; item i is in category i % CATEGORIES.
"""

from __future__ import annotations

from model.features import ACTIONS

SESSIONS = 20_000  # the closed-loop steps' session pool; windows fill to N and slide
SHOPPERS_PER_SESSION = 0.1
ITEMS, CATEGORIES, SHELF = 5000, 100, 8
SHELF_STRIDE = 7919  # a prime: session s's shelf starts at item s * SHELF_STRIDE % ITEMS, so neighbours differ


def shoppers(sessions: int) -> int:
    """How many shoppers a pool of `sessions` sessions belongs to (session s to shopper s % shoppers)."""
    return max(1, int(sessions * SHOPPERS_PER_SESSION))


def shelf_item(session: int, pick: int) -> int:
    """The `pick`-th item (0 ≤ pick < SHELF) of session `session`'s shelf."""
    return (session * SHELF_STRIDE + pick) % ITEMS


def category(item: int) -> int:
    return item % CATEGORIES


def wrk_env(sessions: int = SESSIONS) -> dict[str, str]:
    """The SI_WRK_* variables that give a Lua script these pools and model.features.ACTIONS."""
    return {
        "SI_WRK_ACTIONS": ",".join(ACTIONS),
        "SI_WRK_SESSIONS": str(sessions),
        "SI_WRK_USERS": str(shoppers(sessions)),
        "SI_WRK_ITEMS": str(ITEMS),
        "SI_WRK_CATEGORIES": str(CATEGORIES),
        "SI_WRK_SHELF": str(SHELF),
        "SI_WRK_STRIDE": str(SHELF_STRIDE),
    }
