"""The Redis key scheme, defined once (docs/redis.md): prefix → the keys of a session and of the index.

Pure string building, no client: the store, the benchmarks and the tests all spell keys through it.
The `{session_id}` hash tag keeps one session's keys on one cluster slot; the `{atrisk}` tag keeps
both index keys on one slot, so one script can prune them together.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "si:v1"


@dataclass(frozen=True)
class SessionKeys:
    window: str  # list of packed events, oldest first, at most N
    meta: str  # hash: count, last ts, sticky from_ad, cart state, last scores (score_record.py)
    events: str  # hash: digest of an event_id -> "event_index|body[|answer]", the newest few

    def as_tuple(self) -> tuple[str, str, str]:
        return self.window, self.meta, self.events


@dataclass(frozen=True)
class KeyScheme:
    prefix: str = DEFAULT_PREFIX

    @property
    def at_risk(self) -> str:
        """zset: session_id -> abandonment risk."""
        return f"{self.prefix}:{{atrisk}}"

    @property
    def at_risk_expiry(self) -> str:
        """zset: session_id -> epoch seconds when its TTL runs out (prunes the index)."""
        return f"{self.prefix}:{{atrisk}}:exp"

    @property
    def alerts(self) -> str:
        """stream: coupon alerts (docs/redis.md "Coupon alerts"); its own `{alerts}` slot on a cluster."""
        return f"{self.prefix}:{{alerts}}"

    def outcomes(self, session_id: str) -> str:
        """hash: a session's alerts and their orders, kept `SI_ALERT_OUTCOME_DAYS` (the session's slot)."""
        self.session(session_id)  # refuses braces
        return f"{self.prefix}:{{{session_id}}}:o"

    @property
    def outcomes_pattern(self) -> str:
        """SCAN pattern matching every session's outcomes hash."""
        return f"{self.prefix}:{{*}}:o"

    @property
    def session_pattern(self) -> str:
        """SCAN pattern matching every session key (and the index keys, whose tag is `{atrisk}`)."""
        return f"{self.prefix}:{{*}}:*"

    def context(self, session_id: str) -> str:
        """hash: the session's context state (service/store/context_record.py), in the session's slot."""
        self.session(session_id)  # refuses braces
        return f"{self.prefix}:{{{session_id}}}:x"

    def context_key_parts(self) -> tuple[str, str]:
        """The text before and after a session id in its context key: append_event.lua builds the key of a
        user's running session from them (single Redis only: that key is in another slot)."""
        return f"{self.prefix}:{{", "}:x"

    def user(self, user_hash: str) -> str:
        """hash: a shopper's history, keyed by the keyed hash of the user id (docs/privacy.md); its own slot."""
        if not user_hash.isalnum():
            raise ValueError("a user key takes the hex digest of the user id, never the id itself")
        return f"{self.prefix}:{{u:{user_hash}}}:h"

    def click(self, session_id: str) -> list[str]:
        """append_event.lua's KEYS[1..5]: window, meta, event ids, outcomes, context; the id checked once (a click
        spells these five on every call)."""
        base = self._base(session_id)
        return [f"{base}:w", f"{base}:m", f"{base}:e", f"{base}:o", f"{base}:x"]

    def session(self, session_id: str) -> SessionKeys:
        base = self._base(session_id)
        return SessionKeys(window=f"{base}:w", meta=f"{base}:m", events=f"{base}:e")

    def _base(self, session_id: str) -> str:
        """`<prefix>:{<session_id>}`, the part every key of the session starts with."""
        if "{" in session_id or "}" in session_id:
            raise ValueError("session_id must not contain braces: they would break the cluster hash tag")
        return f"{self.prefix}:{{{session_id}}}"
