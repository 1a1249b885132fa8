"""User ids stored only as a keyed hash (docs/privacy.md): HMAC-SHA256 with SI_USER_ID_KEY, 128 bits of hex.

Without the key a stored record cannot be tied back to a user id by hashing guessed ids. The key must stay
the same across replicas and restarts, or a shopper's history starts over. Unset, a fixed development key
is used and, with auth on (a deployment), the service warns at startup: it does not refuse, as the
holdout's key does not, so a development setup keeps working; production sets the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from service.settings import Settings

log = logging.getLogger(__name__)

DEV_USER_ID_KEY = "session-intent-development-user-id-key"
DIGEST_BYTES = 16


class UserIdHasher:
    """user id → the hex keyed hash that names the user's record in Redis."""

    def __init__(self, key: str) -> None:
        # The keyed state once: each digest copies it instead of keying HMAC again (about half the cost per click)
        self._keyed = hmac.new(key.encode(), digestmod=hashlib.sha256)

    def digest(self, user_id: str) -> str:
        mac = self._keyed.copy()
        mac.update(user_id.encode())
        return mac.digest()[:DIGEST_BYTES].hex()


def user_id_hasher(settings: Settings, warn: bool = False) -> UserIdHasher:
    """The hasher of SI_USER_ID_KEY; `warn`: say so at startup when a deployment left the key unset."""
    key = settings.user_id_key.get_secret_value()
    if not key:
        if warn and settings.auth_active:
            log.warning("SI_USER_ID_KEY is unset: user ids are hashed with a fixed development key, so anyone can "
                        "tie a stored history to a guessed user id; set a secret key (docs/privacy.md)")
        key = DEV_USER_ID_KEY
    return UserIdHasher(key)


def click_hasher(settings: Settings) -> UserIdHasher:
    """The click path's hasher: names the shopper's history (SI_CONTEXT_STATE `full`) and stands for a click's
    user_id in the body its event_id's retry must repeat; warns about an unset key only where history is kept."""
    return user_id_hasher(settings, warn=keeps_history(settings))


def keeps_history(settings: Settings) -> bool:
    return settings.context_state == "full"
