"""Session windows in Redis (docs/architecture.md §7): one round trip per click, one per batch to write scores back.

Keys (the `{session_id}` hash tag keeps one session's keys on one cluster slot; see docs/redis.md):
    <prefix>:{sid}:w        list of packed events, oldest first, at most N (packing.py)
    <prefix>:{sid}:m        hash: count, last ts, sticky from_ad, cart state, last scores (score_record.py)
    <prefix>:{sid}:e        hash: 8-byte digest of an event_id -> "event_index|body[|answer]", the newest few
    <prefix>:{atrisk}       zset: session_id -> abandonment risk
    <prefix>:{atrisk}:exp   zset: session_id -> epoch seconds when its TTL runs out (prunes the index)
    <prefix>:{sid}:o        hash: the session's coupon alerts and their orders (alerts.py), kept for days
    <prefix>:{alerts}       stream: coupon alerts, approximately capped (alerts.py)

Every command goes through a Lua script or a single-slot command, so the store runs unchanged on a
single Redis and on `redis.asyncio.cluster.RedisCluster`. Redis errors propagate to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from model.context import CONTEXT_DIM
from model.features import ADD_CART, N_ACTIONS, ORDER
from model.risk import CART_CLOSED, CART_OPEN
from service.model_repository import version_of
from service.store import context_record
from service.store.alerts import AlertConfig, split_alerts, stream_fields
from service.store.cluster_history import ClusterHistory
from service.store.cluster_write_back import Call, write_per_master
from service.store.keys import KeyScheme
from service.store.lua_scripts import HISTORY_SCRIPTS, lua_script
from service.store.packing import APPEND_CONFLICT, APPEND_DUPLICATE
from service.store.replies import reply_text
from service.store.score_record import (
    LISTED_FIELDS,
    F,
    ScoreRecord,
    decode_answer,
    decode_meta,
    decode_scores,
    differing_parts,
    number_text,
    score_args,
)
from service.store.window_values import (
    NO_IDS,
    AppendResult,
    ClickIds,
    EventIdConflict,
    ScoreParts,
    SessionWindow,
    event_id_digest,
)

AT_RISK_SCAN = 128  # index candidates fetched per step while filtering out dead sessions

RedisClient = Redis | RedisCluster




class SessionWindowStore:
    """Sliding windows, meta, retry answers and the at-risk index of live sessions."""

    def __init__(
        self,
        client: RedisClient,
        window: int = 10,
        ttl_s: int = 1800,
        prefix: str = "si:v1",
        event_id_memory: int = 64,
        alerts: AlertConfig | None = None,
        context_state: str = "full",
        user_ttl_s: int = 90 * 86_400,
        cluster_history: bool = False,
    ) -> None:
        if window < 1 or ttl_s < 1 or event_id_memory < 0 or user_ttl_s < 1:
            raise ValueError("window, ttl_s and user_ttl_s must be ≥ 1 and event_id_memory ≥ 0")
        self.client = client
        self.window = window
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.key_scheme = KeyScheme(prefix)
        self.event_id_memory = event_id_memory
        self.is_cluster = isinstance(client, RedisCluster)
        self.risk_key = self.key_scheme.at_risk
        self.expiry_key = self.key_scheme.at_risk_expiry
        self.alerts = alerts or AlertConfig()
        # 0 off, 1 the session group, 2 with the shopper's history (context_record.CONTEXT_STATE_LEVELS)
        self.context_level = context_record.CONTEXT_STATE_LEVELS.index(context_state)
        self.user_ttl_s = user_ttl_s
        self._context_key_parts = self.key_scheme.context_key_parts()
        # A cluster starts a session's history outside the click's script (docs/redis.md, cluster_history.py), if
        # asked to: without it a cluster's history features stay 0 and every click is one call.
        self._history = (
            ClusterHistory(client, self.key_scheme, ttl_s, user_ttl_s, {n: lua_script(n) for n in HISTORY_SCRIPTS})
            if isinstance(client, RedisCluster) and cluster_history and self.context_level == 2 else None
        )
        # register_script: EVALSHA, with a SCRIPT LOAD and one retry on NOSCRIPT (e.g. after a restart).
        self._append = client.register_script(lua_script("append_event.lua"))
        self._write = client.register_script(lua_script("write_scores.lua"))
        self._at_risk = client.register_script(lua_script("read_at_risk.lua"))

    def keys(self, session_id: str) -> tuple[str, str, str]:
        """(window, meta, event ids) keys of one session."""
        return self.key_scheme.session(session_id).as_tuple()

    async def append_event(
        self, session_id: str, event_id: str | None, action: int, ts: float, from_ad: bool | None,
        body: str = "", ids: ClickIds | None = None,
    ) -> AppendResult:
        """Dedupe, append, trim to N, update meta and the cart state, refresh the TTL: one EVALSHA.

        `body` is the click as sent (score_record.body_key); an event_id seen before with another body
        raises EventIdConflict and appends nothing. '' skips that comparison. `ids` feed the context state
        in the same call; on a single Redis the user's record too (docs/redis.md "Context state").
        """
        if not 0 <= action < N_ACTIONS:
            raise ValueError(f"action index {action} out of range 0..{N_ACTIONS - 1}")
        if not math.isfinite(ts) or ts < 0:
            raise ValueError(f"ts must be finite epoch seconds, got {ts}")
        args = (
            event_id_digest(event_id), action, round(ts * 1000), "1" if from_ad else "0",
            self.window, self.ttl_s, self.event_id_memory, ADD_CART, ORDER, body,
            *self._context_args(session_id, ids or NO_IDS),
        )
        keys = self.key_scheme.click(session_id)
        if self._with_history(ids):
            keys.append(self.key_scheme.user(ids.user_hash))  # type: ignore[union-attr,arg-type]
        reply = await self._append(keys=keys, args=args)
        event_index, duplicate, out_of_order, cart, answer, model = reply[:6]
        if int(duplicate) == APPEND_CONFLICT:
            raise EventIdConflict(event_id or "", differing_parts(reply_text(answer), body))
        context = await self._context(session_id, ids, reply[6], int(duplicate) != APPEND_DUPLICATE)
        answer_text = reply_text(answer)
        stored = decode_answer(session_id, int(event_index), answer_text, reply_text(model)) if answer_text else None
        return AppendResult(
            packed=reply[7:], cart_has_items=int(cart) == CART_OPEN,
            cart_state=int(cart), event_index=int(event_index),
            duplicate=int(duplicate) == APPEND_DUPLICATE, out_of_order=bool(out_of_order), stored_answer=stored,
            context_row=context,
        )

    async def _context(self, session_id: str, ids: ClickIds | None, raw: list[Any],
                       new_click: bool) -> Sequence[Any] | None:
        """The click's context row as the script gave it; on a cluster, a session whose history is pending (the row's
        extra value, then the fold data of the id's earlier state if unfolded) gets it started here and its row
        filled in (cluster_history.py)."""
        if not self.context_level:
            return None
        if len(raw) > CONTEXT_DIM and self._history is not None and ids is not None and ids.user_hash:
            snapshot = await self._history.start(session_id, ids.user_hash, own=raw[CONTEXT_DIM + 1:])
            raw = raw[:CONTEXT_DIM] if snapshot is None else snapshot.fill(raw[:CONTEXT_DIM], ids.item, new_click)
        if len(raw) != CONTEXT_DIM:
            raise ValueError(f"expected {CONTEXT_DIM} context values from append_event.lua, got {len(raw)}")
        return raw

    def _with_history(self, ids: ClickIds | None) -> bool:
        """The user's record joins the click's call: history kept, a user given, and one Redis (on a cluster its
        slot differs; docs/redis.md "Context state")."""
        return self.context_level == 2 and ids is not None and bool(ids.user_hash) and not self.is_cluster

    def _context_args(self, session_id: str, ids: ClickIds) -> tuple[str | int, ...]:
        """ARGV[11..18] of append_event.lua (and ARGV[19] on a cluster)."""
        before, after = self._context_key_parts
        args: tuple[str | int, ...] = (ids.item or "", ids.category or "", self.context_level, ids.user_hash or "",
                                       self.user_ttl_s, before, after, session_id)
        # ARGV[19], a cluster only: a first click with a user marks its history pending for ClusterHistory.
        return args if self._history is None else (*args, "1")

    async def read_window(self, session_id: str) -> SessionWindow | None:
        """The stored window and cart flag, or None for an unknown or expired session."""
        window_key, meta_key, _ = self.keys(session_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.lrange(window_key, 0, -1)
            pipe.hget(meta_key, F["cart"])
            packed, cart = await pipe.execute()
        if not packed:
            return None
        return SessionWindow(packed=packed, cart_has_items=reply_text(cart) == str(CART_OPEN))

    def score_parts(self, record: ScoreRecord) -> ScoreParts:
        """A record's KEYS and ARGV of write_scores.lua, built once: the ScoreWriter builds them as each click is
        answered, so a flush only joins them (no stall of a whole batch's building on the event loop)."""
        _, meta_key, ids_key = self.keys(record.session_id)
        return ScoreParts(record, (meta_key, ids_key),
                          (record.session_id, event_id_digest(record.event_id), *score_args(record), record.arm,
                           record.policy))

    async def write_scores(self, records: Sequence[ScoreRecord]) -> None:
        """Store a batch's answers, last scores and at-risk entries: one EVALSHA (on a cluster one per slot, sent as
        one pipeline per master)."""
        await self.write_prepared([self.score_parts(record) for record in records])

    async def write_prepared(self, parts: Sequence[ScoreParts]) -> None:
        """write_scores of records whose parts were built already (`score_parts`)."""
        if not parts:
            return
        newest: dict[str, ScoreRecord] = {}
        for part in parts:
            record = part.record
            if record.session_id not in newest or record.event_index > newest[record.session_id].event_index:
                newest[record.session_id] = record
        index_args = [part for r in newest.values() for part in (r.session_id, number_text(r.abandonment_risk))]
        if not isinstance(self.client, RedisCluster):
            await self._write_group(parts, index_args)
            return
        by_slot: dict[int, list[ScoreParts]] = {}
        for part in parts:
            by_slot.setdefault(self.client.keyslot(part.keys[0]), []).append(part)
        # The index lives on its own slot: one more call, beside the per-slot ones, all pipelined per master.
        calls = [self._write_call([], index_args), *(self._write_call(group, []) for group in by_slot.values())]
        replies = await write_per_master(self.client, self._write, calls)
        # The alerts of the calls that succeeded go out even when another master failed: their markers are set, so a
        # later write of the same records would not raise them again.
        await self._xadd_alerts([alert for reply in replies if not isinstance(reply, Exception)
                                 for alert in split_alerts(reply[2:])])
        failed = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if failed is not None:
            raise failed

    async def _xadd_alerts(self, raised: list[list[Any]]) -> None:
        """A cluster's alerts, which write_scores.lua cannot XADD (the stream has its own slot): one more call, only
        for a batch that raised an alert (docs/redis.md)."""
        if not raised:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for alert in raised:
                fields = stream_fields([reply_text(x) for x in alert])
                pipe.xadd(self.key_scheme.alerts, fields, maxlen=self.alerts.stream_maxlen, approximate=True)
            await pipe.execute()

    def _write_call(self, parts: Sequence[ScoreParts], index_args: list[str]) -> Call:
        """write_scores.lua's (KEYS, ARGV) for records of one slot and/or the index's entries."""
        keys: list[str] = []
        args: list[str | bytes | int] = [len(parts), self.ttl_s, len(index_args) // 2]
        for part in parts:
            keys += part.keys
            args += part.args
        if index_args:
            keys += [self.risk_key, self.expiry_key]
            args += index_args
        keys += [self.key_scheme.outcomes(p.record.session_id) for p in parts if p.record.arm]
        xadd_here = not self.is_cluster
        if xadd_here:
            keys.append(self.key_scheme.alerts)
        args += self.alerts.args(xadd_here)
        return keys, args

    async def _write_group(self, parts: Sequence[ScoreParts], index_args: list[str]) -> list[Any]:
        keys, args = self._write_call(parts, index_args)
        return list(await self._write(keys=keys, args=args))

    async def read_scores(self, session_id: str) -> dict[str, Any] | None:
        """The session's meta and its last stored scores (never runs the model); None when gone.

        A live session whose first score has not reached Redis yet has no score fields.
        """
        _, meta_key, _ = self.keys(session_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(meta_key)
            pipe.ttl(meta_key)
            raw, ttl = await pipe.execute()
        return decode_meta(session_id, {reply_text(k): reply_text(v) for k, v in raw.items()}, int(ttl))

    async def at_risk(self, min_risk: float, limit: int, model_version: str | None = None) -> list[dict[str, Any]]:
        """Live sessions with risk ≥ min_risk, riskiest first, at most `limit`; never an expired one.
        `model_version`: only sessions whose stored scores that version computed (service/model_repository.py)."""
        found: list[dict[str, Any]] = []
        offset = 0
        while len(found) < limit:
            index_keys = [self.risk_key, self.expiry_key]
            flat = await self._at_risk(keys=index_keys, args=[repr(float(min_risk)), offset, AT_RISK_SCAN])
            if not flat:
                break
            candidates = [(reply_text(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]
            offset += len(candidates)
            live, dead = await self._live_scores(candidates)
            found += live if model_version is None else [r for r in live if version_of(r["model"]) == model_version]
            if dead:
                # Trails a delete on a cluster, or an index expiry behind the real TTL, or an order closed
                # the cart (a buyer leaves the index; the next add_cart's score lists it again): drop it now.
                await self.client.zrem(self.risk_key, *dead)
                await self.client.zrem(self.expiry_key, *dead)
                offset -= len(dead)
            if len(candidates) < AT_RISK_SCAN:
                break
        return found[:limit]

    async def _live_scores(self, candidates: list[tuple[str, float]]) -> tuple[list[dict[str, Any]], list[str]]:
        """Split index candidates into listed sessions (with their stored scores) and the ids to drop: gone,
        or closed by an order."""
        fields = [F[name] for name in LISTED_FIELDS]
        async with self.client.pipeline(transaction=False) as pipe:
            for session_id, _ in candidates:
                pipe.hmget(self.keys(session_id)[1], *fields)
            metas = await pipe.execute()
        live: list[dict[str, Any]] = []
        dead: list[str] = []
        for (session_id, risk), values in zip(candidates, metas, strict=True):
            meta = dict(zip(fields, (reply_text(v) for v in values), strict=True))
            scores = decode_scores(session_id, meta)
            if scores is None or meta[F["cart"]] == str(CART_CLOSED):
                dead.append(session_id)
                continue
            live.append({**scores, "abandonment_risk": risk})
        return live, dead

    async def delete_session(self, session_id: str) -> bool:
        """Erase a session's keys, index entries and coupon alerts' outcomes; True if it existed."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in self.keys(session_id):
                pipe.delete(key)  # one key per DEL: a cluster pipeline routes each on its own
            pipe.zrem(self.risk_key, session_id)
            pipe.zrem(self.expiry_key, session_id)
            pipe.delete(self.key_scheme.outcomes(session_id))  # its alerts too: erased means erased
            pipe.delete(self.key_scheme.context(session_id))  # and its items
            results = await pipe.execute()
        return sum(int(n) for n in results[:3]) > 0

    async def delete_user(self, user_hash: str) -> bool:
        """Erase a shopper's history and the item state of their running session; True if they had one."""
        user_key = self.key_scheme.user(user_hash)
        running = await self.client.hget(user_key, context_record.USER_FIELDS["running"])
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(user_key)
            if running is not None:
                pipe.delete(self.key_scheme.context(reply_text(running)))
            results = await pipe.execute()
        return int(results[0]) > 0

    async def ping(self) -> bool:
        """True when Redis answers; a readiness probe, so it never raises."""
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False
