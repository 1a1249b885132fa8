"""The score record and its Redis encoding: the one place that names a session's meta-hash fields.

Python writes and reads records through this module, and the Lua scripts get the same names from
`lua_prelude()`, which the store prepends to every script (docs/architecture.md §7.1). A field
renamed here is renamed everywhere.

Meta hash `<prefix>:{sid}:m`, written by append_event.lua (the click) and write_scores.lua (its scores):
    count       events appended so far          last_ts    newest ts, integer ms
    from_ad     sticky from_ad flag '0'/'1'     cart       cart state '0' none, '1' open, '2' closed (model.risk)
    event_index index of the scored event       p_add_cart, p_make_order, risk: shortest float text
    intent      index into model.risk.INTENTS   model      model id
    window_len  events in the scored window     scored_ts  ts of the scored event, epoch seconds
    alert       event_index of the coupon alert of the open cart (absent: none yet; docs/redis.md)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model.risk import CART_CLOSED, CART_NONE, CART_OPEN, CART_STATES, INTENTS

# Python name → Redis hash field. Short fields keep a session's meta hash small (docs/redis.md).
META_FIELDS: Mapping[str, str] = {
    "count": "c",
    "last_ts": "t",
    "from_ad": "a",
    "cart": "k",
    "event_index": "x",
    "p_add_cart": "pa",
    "p_make_order": "po",
    "risk": "r",
    "intent": "i",
    "model": "mo",
    "window_len": "n",
    "scored_ts": "st",
    "alert": "al",  # event_index of the alert raised for the open cart; cleared when an order closes it
}
F = META_FIELDS
# The ARGV fields of one record in write_scores.lua, in order, after session_id and the event-id digest.
SCORE_FIELDS: tuple[str, ...] = (
    "event_index", "p_add_cart", "p_make_order", "risk", "intent", "model", "window_len", "scored_ts",
)
# session_id, event-id digest, SCORE_FIELDS, then the alert arm and policy ('' when the click is not due an alert).
RECORD_ARGS = 2 + len(SCORE_FIELDS) + 2
# The fields a reader of the at-risk list needs from each candidate's meta hash.
LISTED_FIELDS: tuple[str, ...] = ("event_index", "p_add_cart", "p_make_order", "intent", "model", "window_len",
                                  "scored_ts", "cart")
# The parts of a click's body that an event_id's retry must repeat, in body_key order.
BODY_PARTS: tuple[str, ...] = ("action", "ts", "from_ad", "item_id", "category_id", "user_id")
ID_DIGEST_HEX = 8  # 4 bytes stand for each id in a remembered body: a changed id goes unseen once in 2^32


@dataclass(frozen=True)
class ScoreRecord:
    """The scores answered for one event, written back once per batch."""

    session_id: str
    event_id: str | None
    event_index: int
    p_add_cart: float
    p_make_order: float
    abandonment_risk: float
    intent: str  # one of model.risk.INTENTS
    model: str
    window_len: int  # events in the scored window (the API's `window`)
    ts: float  # the scored event's ts, epoch seconds
    arm: str = ""  # service/arms.py arm when model.risk.alert_due holds for this click, else '' (no alert)
    policy: str = ""  # the scoring model's AlertPolicy.label, with an arm


def scores_of(record: ScoreRecord) -> dict[str, Any]:
    """The response fields of a record (as decode_scores gives them from Redis, plus the risk)."""
    return {
        "session_id": record.session_id, "event_index": record.event_index, "p_add_cart": record.p_add_cart,
        "p_make_order": record.p_make_order, "abandonment_risk": record.abandonment_risk, "intent": record.intent,
        "model": record.model, "window": record.window_len, "ts": record.ts,
    }


def lua_prelude() -> str:
    """`local F = {count='c', ...}`, the record width and model.risk's cart states, for the top of every Lua
    script."""
    pairs = ", ".join(f"{name}='{field}'" for name, field in META_FIELDS.items())
    order = ", ".join(f"'{name}'" for name in SCORE_FIELDS)
    cart = f"local CART_NONE, CART_OPEN, CART_CLOSED = {CART_NONE}, {CART_OPEN}, {CART_CLOSED}\n"
    return f"local F = {{{pairs}}}\nlocal SCORE_FIELDS = {{{order}}}\nlocal RECORD_ARGS = {RECORD_ARGS}\n" + cart


def number_text(value: float) -> str:
    """Shortest text that parses back to the same float, so a retry returns exactly the first answer."""
    return repr(float(value))


def score_args(record: ScoreRecord) -> list[str | int]:
    """The SCORE_FIELDS of a record as write_scores.lua takes them."""
    if record.intent not in INTENTS:
        raise ValueError(f"unknown intent {record.intent!r}; expected one of {', '.join(INTENTS)}")
    values: dict[str, str | int] = {
        "event_index": record.event_index, "p_add_cart": number_text(record.p_add_cart),
        "p_make_order": number_text(record.p_make_order), "risk": number_text(record.abandonment_risk),
        "intent": INTENTS.index(record.intent), "model": record.model, "window_len": record.window_len,
        "scored_ts": number_text(record.ts),
    }
    return [values[name] for name in SCORE_FIELDS]


def body_key(action: int, ts: float | None, from_ad: bool | None, item_id: str | None = None,
             category_id: str | None = None, user_hash: str | None = None) -> str:
    """A click's body as sent, "action:ts_ms:from_ad[:item:category:user]" ('' for an omitted part), stored
    beside its event_id so a retry with another body is refused (docs/service.md "Retries"). Each id stands
    as ID_DIGEST_HEX hex digits of a digest; the user by its keyed hash (service/user_ids.py), never raw.
    The ids' parts are left out when the click has none: about 17 bytes then, up to 44 with ids."""
    ts_part = "" if ts is None else str(round(ts * 1000))
    ad_part = "" if from_ad is None else str(int(from_ad))
    body = f"{action}:{ts_part}:{ad_part}"
    if item_id is None and category_id is None and user_hash is None:
        return body
    item, category = (_id_digest(value) for value in (item_id, category_id))
    return f"{body}:{item}:{category}:{(user_hash or '')[:ID_DIGEST_HEX]}"


def _id_digest(value: str | None) -> str:
    return "" if value is None else hashlib.blake2b(value.encode(), digest_size=ID_DIGEST_HEX // 2).hexdigest()


def differing_parts(first: str, now: str) -> list[str]:
    """The BODY_PARTS in which two body_key texts differ (a body without ids has those parts empty)."""
    def parts(text: str) -> list[str]:
        split = text.split(":")
        return split + [""] * (len(BODY_PARTS) - len(split))

    return [name for name, a, b in zip(BODY_PARTS, parts(first), parts(now), strict=True) if a != b]


def decode_answer(session_id: str, event_index: int, answer: str, model: str) -> dict[str, Any]:
    """An event id's remembered answer → the response fields."""
    p_add, p_order, risk, intent, window_len = answer.split("|")
    return {
        "session_id": session_id, "event_index": event_index, "p_add_cart": float(p_add),
        "p_make_order": float(p_order), "abandonment_risk": float(risk), "intent": INTENTS[int(intent)],
        "model": model, "window": int(window_len),
    }


def decode_scores(session_id: str, meta: Mapping[str, str]) -> dict[str, Any] | None:
    """The score fields of a meta hash (Redis field → text) → the stored answer; None while unscored."""
    if not meta.get(F["event_index"]):
        return None
    return {
        "session_id": session_id, "event_index": int(meta[F["event_index"]]),
        "p_add_cart": float(meta[F["p_add_cart"]]), "p_make_order": float(meta[F["p_make_order"]]),
        "intent": INTENTS[int(meta[F["intent"]])], "model": meta[F["model"]], "window": int(meta[F["window_len"]]),
        "ts": float(meta[F["scored_ts"]]),
    }


def decode_meta(session_id: str, meta: Mapping[str, str], ttl_s: int) -> dict[str, Any] | None:
    """A whole meta hash → the session's state, and its stored scores when it has any; None when gone.

    `latest_event_index` is the newest appended event; `event_index` (absent while unscored) the newest
    whose scores reached Redis. They differ while a score is still on its way (docs/service.md).
    """
    if not meta.get(F["count"]):
        return None
    cart = int(meta.get(F["cart"]) or 0)
    state: dict[str, Any] = {
        "session_id": session_id, "cart": CART_STATES[cart], "cart_has_items": cart == CART_OPEN,
        "from_ad": meta.get(F["from_ad"]) == "1", "events": int(meta[F["count"]]),
        "latest_event_index": int(meta[F["count"]]) - 1,
        "last_event_ts": int(meta.get(F["last_ts"]) or 0) / 1000.0, "expires_in_s": max(int(ttl_s), 0),
    }
    scores = decode_scores(session_id, meta)
    if scores is None:
        return state
    return {**scores, "abandonment_risk": float(meta[F["risk"]]), **state}
