"""The randomized holdout of coupon alerts (docs/service.md "Coupon alerts"): a keyed hash of the session id
assigns each session an arm, `treat` or `hold`.

Held sessions still get alerts on the stream, marked `arm=hold`, so uplift can compare them; a coupon engine
must not act on them. The key (SI_HOLDOUT_SECRET) keeps the assignment unpredictable to clients, and stable
across replicas and restarts: the same session always lands in the same arm.
"""

from __future__ import annotations

import hashlib
import hmac

TREAT, HOLD = "treat", "hold"
ARMS: tuple[str, ...] = (TREAT, HOLD)


class ArmAssigner:
    """session id → arm; `hold_share` of sessions are held out."""

    def __init__(self, secret: str, hold_share: float) -> None:
        if not 0.0 <= hold_share <= 1.0:
            raise ValueError(f"hold_share must be in [0, 1], got {hold_share}")
        self._keyed = hmac.new(secret.encode(), digestmod=hashlib.sha256)  # keyed once, copied per session
        self.hold_share = hold_share

    def arm(self, session_id: str) -> str:
        mac = self._keyed.copy()
        mac.update(session_id.encode())
        digest = mac.digest()
        uniform = int.from_bytes(digest[:8], "big") / 2**64  # [0, 1)
        return HOLD if uniform < self.hold_share else TREAT
