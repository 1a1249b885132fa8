"""A shopper's history on Redis Cluster (docs/redis.md "Redis Cluster: history at a session's first click").

On a single Redis the click's one EVALSHA folds the user's previous session and snapshots their history
(context.lua). On a cluster the user's record, the previous session's state and the click's session are on three
slots, so the click's script only marks the session's history pending, and `ClusterHistory.start` runs the rest
right after, before the click is scored:

    history_start.lua     user's slot: who is running?  (a new user, or this session: the snapshot at once)
    history_handoff.lua   running session's slot: its fold data, handed off (once folded, it keeps the session TTL)
    history_start.lua     user's slot: fold it (compare-and-set on the running session), snapshot, run this one
    history_snapshot.lua  this session's slot: write the snapshot into its context hash

A returning user's session costs 4 calls at its first click, a new user's 2; later clicks none. Concurrent
starters (two first clicks of one session, or two sessions of one user) repeat idempotent steps and fold the
running session once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster

from model.context import CONTEXT_NAMES, CONTEXT_SETS
from service.store.context_record import HISTORY_READY, ITEM_PREFIX
from service.store.keys import KeyScheme
from service.store.replies import reply_text

log = logging.getLogger(__name__)

# The snapshot's values in the order history_snapshot.lua returns them, as context.lua's row names them.
HISTORY_NAMES = tuple(name for name in CONTEXT_SETS["history"] if name != "item_in_hist_cart")
_HISTORY_COLUMNS = tuple(CONTEXT_NAMES.index(name) for name in HISTORY_NAMES)
_IN_HIST_CART = CONTEXT_NAMES.index("item_in_hist_cart")

# Each try past the first means another session of the user started (or was folded) meanwhile; a user with more
# sessions starting at once than this gets this click scored without history, and its next click tries again.
MAX_TRIES = 3


@dataclass(frozen=True)
class HistorySnapshot:
    """What a session's clicks see of the user's earlier sessions: the six hist_* values as the context hash
    stores them (the gap in ms) and the items the user left in their cart (item ids, without the field prefix)."""

    values: tuple[int, ...]
    open_items: frozenset[str]

    def fill(self, raw: Sequence[Any], item: str | None, new_click: bool) -> list[Any]:
        """A click's raw context row (append_event.lua's, in ms) with the history a single Redis would have given it:
        the six values, and whether its item is among the user's open ones (a retry's item flags stay 0, as there)."""
        row = list(raw)
        for column, value in zip(_HISTORY_COLUMNS, self.values, strict=True):
            row[column] = value
        if new_click:
            row[_IN_HIST_CART] = int(item is not None and item in self.open_items)
        return row


class ClusterHistory:
    """Starts a session's history on a cluster: the user's record, the running session's and this one's slots."""

    def __init__(self, client: RedisCluster, key_scheme: KeyScheme, session_ttl_s: int, user_ttl_s: int,
                 scripts: dict[str, str]) -> None:
        self.key_scheme = key_scheme
        self.session_ttl_s = session_ttl_s
        self.user_ttl_s = user_ttl_s
        self._start = client.register_script(scripts["history_start.lua"])
        self._handoff = client.register_script(scripts["history_handoff.lua"])
        self._snapshot = client.register_script(scripts["history_snapshot.lua"])

    async def start(self, session_id: str, user_hash: str, own: Sequence[Any] = ()) -> HistorySnapshot | None:
        """Fold the user's running session, snapshot the history into `session_id`'s state and make it the running
        one; None (nothing written to the session) when other sessions of the user kept starting meanwhile.
        `own`: the fold data of this id's earlier state, when the click found it still unfolded (the id reused)."""
        user_key = self.key_scheme.user(user_hash)
        expected = session_id if own else ""
        payload: Sequence[Any] = own
        for _ in range(MAX_TRIES):
            reply = await self._start(keys=[user_key], args=[session_id, self.user_ttl_s, expected, *payload])
            if int(reply[0]) == HISTORY_READY:
                return await self._write(session_id, user_hash, reply[1:])
            expected = reply_text(reply[1])
            payload = await self._handoff(keys=[self.key_scheme.context(expected)],
                                          args=[user_hash, self.session_ttl_s])
        log.warning("history of session %s not started: the user's running session changed %d times meanwhile",
                    session_id, MAX_TRIES)
        return None

    async def _write(self, session_id: str, user_hash: str, snapshot: Sequence[Any]) -> HistorySnapshot:
        values, items = snapshot[:6], snapshot[6:]
        stored = await self._snapshot(keys=[self.key_scheme.context(session_id)],
                                      args=[user_hash, self.user_ttl_s, *values, *items])
        return HistorySnapshot(values=tuple(int(v) for v in stored),
                               open_items=frozenset(reply_text(i).removeprefix(ITEM_PREFIX) for i in items))
