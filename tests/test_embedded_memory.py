"""The embedded default Redis is bounded (SI_EMBEDDED_REDIS_MAXMEMORY_MB) and evicts by TTL under it."""

from __future__ import annotations

import redis

from service.settings import Settings
from service.store.embedded import EmbeddedRedis

VALUE = b"x" * 20_000


def test_the_default_bound_is_set_and_zero_means_unbounded() -> None:
    bounded = EmbeddedRedis(supervise=False, maxmemory_mb=Settings().embedded_redis_maxmemory_mb).start()
    unbounded = EmbeddedRedis(supervise=False, maxmemory_mb=0).start()
    try:
        config = redis.Redis.from_url(bounded.url).config_get("maxmemory*")
        assert int(config["maxmemory"]) == 256 * 2**20 and config["maxmemory-policy"] == "volatile-ttl"
        assert int(redis.Redis.from_url(unbounded.url).config_get("maxmemory")["maxmemory"]) == 0
    finally:
        bounded.stop()
        unbounded.stop()


def test_under_the_bound_the_keys_that_expire_soonest_go_first() -> None:
    embedded = EmbeddedRedis(supervise=False, maxmemory_mb=4).start()
    try:
        client = redis.Redis.from_url(embedded.url)
        for i in range(80):  # 1.6 MB of long-lived sessions
            client.set(f"long:{i}", VALUE, ex=86_400)
        for i in range(400):  # 8 MB of sessions about to expire: twice the bound
            client.set(f"short:{i}", VALUE, ex=60)
        info = client.info()
        assert info["evicted_keys"] > 0 and info["used_memory"] <= 4 * 2**20 * 1.05
        long_kept = sum(client.exists(f"long:{i}") for i in range(80))
        short_kept = sum(client.exists(f"short:{i}") for i in range(400))
        assert long_kept >= 76, long_kept  # volatile-ttl samples keys, so a few may still go
        assert short_kept < 200
    finally:
        embedded.stop()
