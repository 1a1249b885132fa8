"""Coupon alerts on a Redis Stream and their outcomes (docs/redis.md "Coupon alerts").

write_scores.lua raises an alert with the scores of the click that crossed the policy's threshold while its
cart was open (one per open cart), keeps it in the session's outcomes hash, and on a single Redis XADDs it
in the same call. On a cluster the stream has its own slot, so the script returns the batch's alerts and
`SessionWindowStore` XADDs them in one pipeline: a second command only for a batch that raised an alert.
append_event.lua records the order that closes an alerted cart. This module holds the stream's and the
outcomes' encoding, for the store and for readers (the coupon consumer, `session-intent uplift`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.store.replies import reply_text

ALERT_FIELDS: tuple[str, ...] = ("session", "event_index", "risk", "model", "policy", "arm", "ts")
ALERT_PARTS = 7  # the flat alert of write_scores.lua's reply: session, event_index, risk, model, arm, ts, policy
ORDER_PREFIX = "o"  # outcomes-hash field of an alert's order: "o<alert event_index>"


@dataclass(frozen=True)
class AlertConfig:
    """How write_scores.lua keeps alerts; whether a click raises one is its record's (arm and policy)."""

    stream_maxlen: int = 100_000
    outcome_ttl_s: int = 30 * 86400

    def args(self, xadd_here: bool) -> list[str | int]:
        return [self.stream_maxlen, self.outcome_ttl_s, "1" if xadd_here else "0"]


def split_alerts(flat: list[Any]) -> list[list[Any]]:
    """write_scores.lua's flat alerts → one [session, event_index, risk, model, arm, ts, policy] list per alert."""
    return [flat[i:i + ALERT_PARTS] for i in range(0, len(flat), ALERT_PARTS)]


def stream_fields(alert: list[str]) -> dict[Any, Any]:
    """One alert as the stream entry's fields (ALERT_FIELDS), as the Lua XADD writes them."""
    session, event_index, risk, model, arm, ts, policy = alert
    return {"session": session, "event_index": event_index, "risk": risk, "model": model, "policy": policy,
            "arm": arm, "ts": ts}


def decode_outcomes(session_id: str, raw: Mapping[str, str], session_live: bool) -> list[dict[str, Any]]:
    """A session's outcomes hash → one row per alert: its fields, and what followed.

    outcome: "order" (an order closed the alerted cart; order_ts), "expired" (the session expired, its
    cart still open: only an order closes a cart), or "pending" (the session is still live).
    """
    rows = []
    for field, value in raw.items():
        if field.startswith(ORDER_PREFIX):
            continue
        ts, risk, arm, policy, model = value.split("|")
        row: dict[str, Any] = {"session": session_id, "event_index": int(field), "ts": float(ts), "risk": float(risk),
                               "arm": arm, "policy": policy, "model": model, "order_ts": None}
        order = raw.get(f"{ORDER_PREFIX}{field}")
        if order is not None:
            order_ms, _ = order.split("|")
            row.update(outcome="order", order_ts=int(order_ms) / 1000)
        else:
            row["outcome"] = "pending" if session_live else "expired"
        rows.append(row)
    return rows


async def read_outcomes(client: Any, outcomes_pattern: str, meta_key: Any) -> list[dict[str, Any]]:
    """Every alert with its outcome, from the outcomes hashes (SCAN: every primary on a cluster).

    `meta_key(session_id)` names a session's meta hash, whose presence tells `pending` from `expired`.
    """
    rows: list[dict[str, Any]] = []
    async for key in client.scan_iter(match=outcomes_pattern, count=1000):
        name = reply_text(key)
        session_id = name[name.index("{") + 1:name.rindex("}")]
        raw = await client.hgetall(name)
        live = bool(await client.exists(meta_key(session_id)))
        fields = {reply_text(k): reply_text(v) for k, v in raw.items()}
        rows += decode_outcomes(session_id, fields, live)
    return rows
