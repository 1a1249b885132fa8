"""The one definition of the context beside the window (docs/architecture.md §3.1), shared by training and serving.

numpy/stdlib only, like model/features.py. For the prefix that ends at a click (the click included): the
`session` group (the session's own clicks so far) and the `history` group (the same user's earlier sessions,
frozen at the session's first click). One definition, two implementations, equal on random logs
(tests/test_context.py): `compute_context` here (vectorised, training) and model/context_tracker.py's
`ContextTracker` (incremental, O(1) per click: the reference for what serving keeps in Redis).
A missing id (-1 / None) leaves its features at 0.
Scaling has one home: `scale_context` and the network's ContextScaling read the units of `CONTEXT_FEATURES`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.features import ADD_CART, ORDER, EventLog
from model.risk import CART_OPEN, cart_states

SESSION, HISTORY = "session", "history"
CONTEXT_VERSION = 1


@dataclass(frozen=True)
class ContextFeature:
    name: str
    group: str  # SESSION or HISTORY
    unit: float | None  # None: a 0/1 flag fed as it is; else fed as log1p(x / unit)
    meaning: str


CONTEXT_FEATURES: tuple[ContextFeature, ...] = (
    ContextFeature("item_seen_before", SESSION, None, "the click's item was clicked earlier in this session"),
    ContextFeature("item_carted_before", SESSION, None, "the click's item was carted earlier in this session"),
    ContextFeature("cart_items_open", SESSION, 1.0, "items added to the cart in this session and not ordered since"),
    ContextFeature("distinct_items", SESSION, 1.0, "distinct items clicked in this session so far"),
    ContextFeature("distinct_categories", SESSION, 1.0, "distinct categories clicked in this session so far"),
    ContextFeature("clicks", SESSION, 1.0, "clicks in this session so far"),
    ContextFeature("session_seconds", SESSION, 60.0, "seconds since the session's first click"),
    ContextFeature("cart_open", SESSION, None, "the cart is open after this click (model/risk.py)"),
    ContextFeature("cart_open_seconds", SESSION, 60.0, "seconds since the open cart opened; 0 when not open"),
    ContextFeature("hist_sessions", HISTORY, 1.0, "the user's earlier sessions"),
    ContextFeature("hist_events", HISTORY, 1.0, "clicks in the user's earlier sessions"),
    ContextFeature("hist_carts", HISTORY, 1.0, "add_cart clicks in the user's earlier sessions"),
    ContextFeature("hist_orders", HISTORY, 1.0, "order clicks in the user's earlier sessions"),
    ContextFeature("hist_gap_seconds", HISTORY, 3600.0, "seconds since the user's last earlier click; 0: none"),
    ContextFeature("hist_cart_items_open", HISTORY, 1.0, "items carted earlier, unordered at session start"),
    ContextFeature("item_in_hist_cart", HISTORY, None, "the click's item is among those"),
)  # fmt: skip
CONTEXT_NAMES: tuple[str, ...] = tuple(f.name for f in CONTEXT_FEATURES)
CONTEXT_DIM = len(CONTEXT_FEATURES)
_INDEX = {name: i for i, name in enumerate(CONTEXT_NAMES)}
# The feature sets the ablation compares and `train --context` accepts.
CONTEXT_SETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "session": tuple(f.name for f in CONTEXT_FEATURES if f.group == SESSION),
    "history": tuple(f.name for f in CONTEXT_FEATURES if f.group == HISTORY),
    "session+history": CONTEXT_NAMES,
}


def context_names(spec: str) -> tuple[str, ...]:
    """The feature names of a set name (`CONTEXT_SETS`) or of a comma-separated list of feature names."""
    if spec in CONTEXT_SETS:
        return CONTEXT_SETS[spec]
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    unknown = [n for n in names if n not in _INDEX]
    if unknown:
        raise ValueError(
            f"unknown context {unknown}; expected one of {list(CONTEXT_SETS)} or names from {CONTEXT_NAMES}"
        )
    return names


def context_columns(names: Sequence[str]) -> np.ndarray:
    """(k,) column of each name in the full (E, CONTEXT_DIM) context matrix."""
    return np.array([_INDEX[n] for n in names], dtype=np.int64)


def context_units(names: Sequence[str]) -> np.ndarray:
    """(k,) float32 unit of each feature; 0 for a flag (fed as it is)."""
    return np.array([CONTEXT_FEATURES[_INDEX[n]].unit or 0.0 for n in names], dtype=np.float32)


def scale_context(values: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(…, k) values → what the network's first context layer sees: log1p(x / unit), flags as they are."""
    units = context_units(names)
    scaled = np.log1p(np.maximum(values, 0.0) / np.where(units > 0, units, 1.0))
    return np.where(units > 0, scaled, values).astype(np.float32)


def context_fingerprint(names: Sequence[str]) -> str:
    """Hash of the chosen features' names, order, definitions and scaling; '' for no context."""
    if not names:
        return ""
    chosen = [CONTEXT_FEATURES[_INDEX[n]] for n in names]
    layout = {"version": CONTEXT_VERSION, "features": [[f.name, f.group, f.unit, f.meaning] for f in chosen],
              "scaling": "log1p(x/unit) where unit, else as is"}  # fmt: skip
    return hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()[:16]


class ContextMismatch(ValueError):
    """A model was trained on context features this code defines differently."""


def context_card(names: Sequence[str]) -> dict[str, object]:
    """What a model card records about its context: the names in input order and their fingerprint."""
    return {"names": list(names), "fingerprint": context_fingerprint(names)} if names else {}


def check_context(card_context: dict[str, object], source: str) -> tuple[str, ...]:
    """The card's context names, after checking their fingerprint against this code's definitions."""
    names = tuple(str(n) for n in card_context.get("names", ()) or ())  # type: ignore[attr-defined]
    unknown = [n for n in names if n not in _INDEX]
    if unknown or card_context.get("fingerprint", "") != context_fingerprint(names):
        raise ContextMismatch(
            f"{source} was trained on context {list(names)} with fingerprint {card_context.get('fingerprint')!r}, "
            f"but this code's model/context.py gives {context_fingerprint([n for n in names if n in _INDEX])!r}"
        )
    return names


@dataclass(frozen=True)
class ContextIds:
    """Ids beside an EventLog: items, categories (E,) and users (S,) as int codes, -1 where unknown; None: none."""

    items: np.ndarray | None = None
    categories: np.ndarray | None = None
    users: np.ndarray | None = None


def _dense(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) dense id of each (a, b) pair of non-negative ints, numbered in (a, b) order."""
    if not a.size:
        return np.zeros(0, dtype=np.int64)
    width = int(b.max()) + 1
    if int(a.max()) >= np.iinfo(np.int64).max // width:  # a·width + b would overflow int64
        _, inverse = np.unique(np.stack((a, b), axis=1), axis=0, return_inverse=True)
    else:  # one int64 key per pair: a fraction of the memory and time of np.unique(axis=0)
        _, inverse = np.unique(a.astype(np.int64) * width + b, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def _per_session_cumsum(values: np.ndarray, starts: np.ndarray, session: np.ndarray) -> np.ndarray:
    """(E,) running sum of `values` within each session."""
    total = np.cumsum(values, dtype=np.float64)
    before = np.concatenate([[0.0], total])[starts]  # (S,) sum before each session's first event
    total -= before[session]
    return total


def _distinct_so_far(codes: np.ndarray, session: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E,) distinct known codes (≥ 0) in the session up to each event, and (E,) whether each is a repeat."""
    n = codes.shape[0]
    known = codes >= 0
    first = np.zeros(n, dtype=bool)
    if known.any():
        idx = np.flatnonzero(known)
        _, first_pos = np.unique(_dense(session[idx], codes[idx]), return_index=True)  # first occurrences
        first[idx[first_pos]] = True
    return _per_session_cumsum(first, starts, session), known & ~first


def _session_group(log: EventLog, ids: ContextIds, out: np.ndarray) -> None:
    """Fill `out` (E, 9) with the session features, in CONTEXT_FEATURES order, one column at a time."""
    n, starts, session = len(log), np.asarray(log.starts, dtype=np.int64), log.session_of_event()
    ts, actions = np.asarray(log.ts, dtype=np.float64), np.asarray(log.actions)
    items = ids.items if ids.items is not None else np.full(n, -1, dtype=np.int64)
    cats = ids.categories if ids.categories is not None else np.full(n, -1, dtype=np.int64)
    out[:, 3], out[:, 0] = _distinct_so_far(items, session, starts)
    out[:, 4] = _distinct_so_far(cats, session, starts)[0]
    known = np.flatnonzero(items >= 0)
    if known.size:
        pair = np.full(n, -1, dtype=np.int64)
        pair[known] = _dense(session[known], items[known])
        is_cart, is_op = actions == ADD_CART, (actions == ADD_CART) | (actions == ORDER)
        first_cart = np.full(int(pair.max()) + 1, n, dtype=np.int64)
        carts = known[is_cart[known]]
        np.minimum.at(first_cart, pair[carts], carts)
        out[known, 1] = first_cart[pair[known]] < known
        out[:, 2] = _per_session_cumsum(_open_deltas(pair, is_op & (pair >= 0), is_cart), starts, session)
    out[:, 5] = np.arange(n) - starts[session] + 1
    out[:, 6] = np.maximum(ts - ts[starts[session]], 0.0)
    is_open = cart_states(actions, starts) == CART_OPEN
    prev_open = np.concatenate([[False], is_open[:-1]]) if n else is_open.copy()
    prev_open[starts] = False  # the click that opened the cart: open now, not before it in this session
    opened = is_open & ~prev_open
    opened_at = np.maximum.accumulate(np.where(opened, np.arange(n), 0)) if n else np.zeros(0, dtype=np.int64)
    out[:, 7] = is_open
    out[:, 8] = np.where(is_open, np.maximum(ts - ts[opened_at], 0.0), 0.0)


def _open_deltas(pair: np.ndarray, is_op: np.ndarray, is_cart: np.ndarray) -> np.ndarray:
    """(E,) change of the open-item count at each event: +1 when a cart opens a pair that was not open,
    −1 when an order closes an open one; each pair's ops taken in event order."""
    delta = np.zeros(pair.shape[0], dtype=np.float64)
    ops = np.flatnonzero(is_op)
    if not ops.size:
        return delta
    ops = ops[np.argsort(pair[ops], kind="stable")]  # by pair, event order within one
    after = is_cart[ops].astype(np.float64)
    before = np.concatenate([[0.0], after[:-1]])
    before[np.concatenate([[True], pair[ops][1:] != pair[ops][:-1]])] = 0.0  # a pair's first op
    delta[ops] = after - before
    return delta


def _history_group(log: EventLog, ids: ContextIds, out: np.ndarray) -> None:
    """Fill `out` (E, 7) with the history features: the user's events strictly before the session's first click."""
    n = len(log)
    if ids.users is None or not n:
        return
    starts, session = np.asarray(log.starts, dtype=np.int64), log.session_of_event()
    users = np.asarray(ids.users, dtype=np.int64)
    ev_user = users[session]
    mine = np.flatnonzero(ev_user >= 0)
    if not mine.size:
        return
    ts, actions = np.asarray(log.ts, dtype=np.float64), np.asarray(log.actions)
    ts_rank = np.unique(ts, return_inverse=True)[1].reshape(-1).astype(np.int64)
    span = int(ts_rank.max()) + 2
    # The user timeline: every event of a known user, by (user, ts, event index).
    order = mine[np.lexsort((mine, ts_rank[mine], ev_user[mine]))]
    key = ev_user[order] * span + ts_rank[order]
    items = ids.items if ids.items is not None else np.full(n, -1, dtype=np.int64)
    upair = np.full(n, -1, dtype=np.int64)
    with_item = mine[items[mine] >= 0]
    del mine
    upair[with_item] = _dense(ev_user[with_item], items[with_item])
    is_cart, is_op = actions == ADD_CART, (actions == ADD_CART) | (actions == ORDER)
    # user-level open-item deltas need each pair's ops in time order, so work on the timeline's order
    open_delta = np.zeros(n, dtype=np.float64)
    open_delta[order] = _open_deltas(upair[order], (is_op & (upair >= 0))[order], is_cart[order])
    known_sessions = np.flatnonzero(users >= 0)
    s_user, s_rank = users[known_sessions], ts_rank[starts[known_sessions]]
    lo = np.searchsorted(key, s_user * span, side="left")  # (S',) the user's first timeline position
    hi = np.searchsorted(key, s_user * span + s_rank, side="left")  # (S',) first at or after the start
    del key
    per_session = np.zeros((len(starts), 6), dtype=np.float64)
    session_keys = np.sort(s_user * span + s_rank)
    per_session[known_sessions, 0] = np.searchsorted(session_keys, s_user * span + s_rank, side="left") - (
        np.searchsorted(session_keys, s_user * span, side="left")
    )
    # one (E + 1,) running sum along the timeline at a time: events, carts, orders, open-item deltas
    for j, values in zip((1, 2, 3, 5), (np.ones(n, dtype=bool), is_cart, actions == ORDER, open_delta), strict=True):
        cum = np.concatenate([[0.0], np.cumsum(values[order], dtype=np.float64)])
        per_session[known_sessions, j] = cum[hi] - cum[lo]
    del cum, open_delta
    last_ts = ts[order[np.maximum(hi - 1, 0)]]
    per_session[known_sessions, 4] = np.where(hi > lo, ts[starts[known_sessions]] - last_ts, 0.0)
    for j in range(6):
        out[:, j] = per_session[session, j]
    # item_in_hist_cart: the (user, item) pair's last cart/order op before the session's first click was a cart.
    op_events = order[(is_op & (upair >= 0))[order]]
    del order
    if op_events.size and with_item.size:
        op_events = op_events[np.lexsort((op_events, ts_rank[op_events], upair[op_events]))]
        op_key = upair[op_events] * span + ts_rank[op_events]
        q = with_item
        pos = np.searchsorted(op_key, upair[q] * span + ts_rank[starts[session[q]]], side="left") - 1
        hit = (pos >= 0) & (upair[op_events[np.maximum(pos, 0)]] == upair[q])
        out[q, 6] = hit & is_cart[op_events[np.maximum(pos, 0)]]


CHUNK_EVENTS = 1 << 20  # the vectors of about this many events, not of the whole log, are alive at once


def _sub_log(log: EventLog, ids: ContextIds, sessions: np.ndarray) -> tuple[EventLog, ContextIds, np.ndarray]:
    """The sessions at the sorted ordinals `sessions` as a log of their own, its ids, and (e,) their rows in `log`."""
    lengths = np.diff(np.append(log.starts, len(log)))[sessions]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    rows = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(log.starts[sessions] - starts, lengths)
    sub = EventLog(log.actions[rows], log.ts[rows], log.from_ad[rows], starts)
    return sub, _ids_at(ids, rows, sessions), rows


def _ids_at(ids: ContextIds, events: np.ndarray | slice, sessions: np.ndarray | slice) -> ContextIds:
    """The ids of the events and sessions at `events` and `sessions`."""
    items, categories, users = ids.items, ids.categories, ids.users
    return ContextIds(items[events] if items is not None else None,
                      categories[events] if categories is not None else None,
                      users[sessions] if users is not None else None)  # fmt: skip


def compute_context(log: EventLog, ids: ContextIds | None = None, chunk_events: int = CHUNK_EVENTS) -> np.ndarray:
    """(E, CONTEXT_DIM) float32 raw (unscaled) context of the prefix ending at each event of `log`.

    Sessions need not be grouped by user; within a session, events are in arrival (ts) order. Memory: the
    result (64 bytes per event) and the float64 vectors of one chunk of about `chunk_events` events; the
    session group runs over runs of whole sessions, the history group over groups of whole users.
    """
    ids = ids or ContextIds()
    n, starts = len(log), np.asarray(log.starts, dtype=np.int64)
    out = np.zeros((n, CONTEXT_DIM), dtype=np.float32)
    n_session = sum(f.group == SESSION for f in CONTEXT_FEATURES)
    firsts = np.unique(np.searchsorted(starts, np.arange(0, n, chunk_events), side="right") - 1)
    for a, b in zip(firsts, np.append(firsts[1:], len(starts)), strict=True):
        lo, hi = int(starts[a]), int(starts[b]) if b < len(starts) else n
        sub = EventLog(log.actions[lo:hi], log.ts[lo:hi], log.from_ad[lo:hi], starts[a:b] - lo)
        _session_group(sub, _ids_at(ids, slice(lo, hi), slice(a, b)), out[lo:hi, :n_session])
    if ids.users is None or not n:
        return out
    groups = -(-n // chunk_events)
    if groups == 1:  # one chunk: no sub-log copies
        _history_group(log, ids, out[:, n_session:])
        return out
    users = np.asarray(ids.users, dtype=np.int64)
    for g in range(groups):  # a user's sessions all fall in one group: history never crosses groups
        members = np.flatnonzero((users >= 0) & (users % groups == g))
        if not members.size:
            continue
        sub, sub_ids, rows = _sub_log(log, ids, members)
        part = np.zeros((len(rows), CONTEXT_DIM - n_session), dtype=np.float32)
        _history_group(sub, sub_ids, part)
        out[rows, n_session:] = part
    return out


def context_without_ids(log: EventLog) -> np.ndarray:
    """(E, CONTEXT_DIM) float32 context of `log` with every id unknown: what serving computes for clicks sent
    without ids (id features and the whole history at 0; clicks, seconds and the cart state as usual)."""
    return compute_context(log, ContextIds())
