"""The context state beside the window (docs/architecture.md §3.1, docs/redis.md "Context state"): the one
place that names its Redis fields, for Python and, through `lua_prelude()`, for append_event.lua.

Session context hash `<prefix>:{sid}:x` (the session's slot), written by the click's one EVALSHA:
    counters (CONTEXT_FIELDS)  first/newest ts, carts, orders, cart-opened ts, distinct items/categories,
                               open items, the user's hashed id and the six history values snapshot at the
                               session's first click
    'i:'..item_id -> ITEM_* bits (seen, carted, open, closed, in the user's open cart at session start)
    'c:'..category_id -> 1 (seen)
The cart state is the meta hash's `cart` (score_record.py); the clicks are counted here too, since the fold
reads them after the window and meta have expired.

User hash `<prefix>:{u:<hmac>}:h` (its own slot), written only at a session's first click (the fold):
    counters (USER_FIELDS)     sessions, events, carts, orders, newest ts, open items, the running session
    'i:'..item_id -> 1          items carted in earlier sessions and not ordered since

The script returns the click's raw context in model/context.py's CONTEXT_NAMES order (`decode_context`):
counts and flags as integers, durations in integer milliseconds (MS_NAMES), turned into seconds here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from model.context import CONTEXT_DIM, CONTEXT_NAMES

CONTEXT_FIELDS: Mapping[str, str] = {
    "clicks": "n",  # clicks so far (the meta hash counts them too, but expires with the window)
    "first_ts": "ft",  # integer ms of the session's first click
    "max_ts": "mt",  # newest ts so far, integer ms (the fold's last_ts)
    "carts": "ca",
    "orders": "or",
    "cart_opened_ts": "ko",  # integer ms when the open cart opened
    "items": "ni",  # distinct items clicked
    "categories": "nc",  # distinct categories clicked
    "open_items": "no",  # items carted and not ordered since
    "user": "u",  # the user's keyed hash, set at the first click that carried a user_id
    "hist_sessions": "hs",
    "hist_events": "he",
    "hist_carts": "hc",
    "hist_orders": "ho",
    "hist_gap_ms": "hg",
    "hist_cart_items_open": "hi",
    # A cluster only (docs/redis.md "Redis Cluster: history at a session's first click"): the user's hash while
    # the session's history is not written yet, and, once the session was folded, the user it was folded for.
    "history_pending": "hp",
    "folded_for": "fu",
}
USER_FIELDS: Mapping[str, str] = {
    "sessions": "s",
    "events": "e",
    "carts": "ca",
    "orders": "or",
    "last_ts": "lt",  # integer ms of the newest folded click; absent: no earlier session
    "open_items": "no",
    "running": "r",  # session id of the user's newest session, folded in when the next one starts
}
ITEM_PREFIX, CATEGORY_PREFIX = "i:", "c:"  # no counter field holds a colon
# Bits of a session's item field.
ITEM_SEEN, ITEM_CARTED, ITEM_OPEN, ITEM_CLOSED, ITEM_HIST_OPEN = 1, 2, 4, 8, 16
# The context values the script returns in milliseconds; every other one is a count or a 0/1 flag.
MS_NAMES: frozenset[str] = frozenset({"session_seconds", "cart_open_seconds", "hist_gap_seconds"})
_MS_COLUMNS = np.array([name in MS_NAMES for name in CONTEXT_NAMES])
_DIVISORS = np.where(_MS_COLUMNS, 1000.0, 1.0)  # ms → s; a count divided by 1.0 stays exact

# history_start.lua's reply codes (a cluster): the snapshot follows, or the running session must be folded first.
HISTORY_READY, HISTORY_FOLD = 0, 1

# Which state a replica keeps (SI_CONTEXT_STATE): none, the session group, or the session group and history.
CONTEXT_STATE_LEVELS: tuple[str, ...] = ("off", "session", "full")


def decode_contexts(rows: Sequence[Sequence[int | bytes | str]]) -> np.ndarray:
    """k rows of the script's CONTEXT_DIM integers → (k, CONTEXT_DIM) float32 raw context, durations in seconds.
    One conversion per batch (service/model_inputs.py), not one per click on the event loop."""
    if not rows:
        return np.zeros((0, CONTEXT_DIM), dtype=np.float32)
    values = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
    if values.shape[1] != CONTEXT_DIM:
        raise ValueError(f"expected {CONTEXT_DIM} context values from append_event.lua, got {values.shape[1]}")
    return (values / _DIVISORS).astype(np.float32)


def decode_context(raw: Sequence[int | bytes | str]) -> np.ndarray:
    """The script's CONTEXT_DIM integers → (CONTEXT_DIM,) float32 raw context, durations in seconds."""
    return decode_contexts([raw])[0]


def lua_prelude() -> str:
    """`local CF = {...}`, `local UF = {...}`, the item bits and CONTEXT_NAMES, for the top of every script."""

    def table(fields: Mapping[str, str]) -> str:
        return "{" + ", ".join(f"{name}='{field}'" for name, field in fields.items()) + "}"

    names = ", ".join(f"'{name}'" for name in CONTEXT_NAMES)
    return (
        f"local CF = {table(CONTEXT_FIELDS)}\nlocal UF = {table(USER_FIELDS)}\n"
        f"local ITEM_PREFIX, CATEGORY_PREFIX = '{ITEM_PREFIX}', '{CATEGORY_PREFIX}'\n"
        f"local ITEM_SEEN, ITEM_CARTED, ITEM_OPEN, ITEM_CLOSED, ITEM_HIST_OPEN = "
        f"{ITEM_SEEN}, {ITEM_CARTED}, {ITEM_OPEN}, {ITEM_CLOSED}, {ITEM_HIST_OPEN}\n"
        f"local CONTEXT_NAMES = {{{names}}}\n"
        f"local HISTORY_READY, HISTORY_FOLD = {HISTORY_READY}, {HISTORY_FOLD}\n"
    )
