"""A user id's keyed hash (service/user_ids.py) is HMAC-SHA256 under SI_USER_ID_KEY, 128 bits of hex: the stored
records of a running deployment must keep their names across releases."""

from __future__ import annotations

import hashlib
import hmac

from service.user_ids import UserIdHasher


def test_the_digest_is_hmac_sha256_truncated_to_128_bits() -> None:
    hasher = UserIdHasher("a-secret")
    for user_id in ["u-1", "u-2", "u-1", "é-ü:9"]:  # repeated: the keyed state is reused, never updated
        expected = hmac.new(b"a-secret", user_id.encode(), hashlib.sha256).digest()[:16].hex()
        assert hasher.digest(user_id) == expected


def test_another_key_names_another_record() -> None:
    assert UserIdHasher("key-a").digest("u-1") != UserIdHasher("key-b").digest("u-1")
