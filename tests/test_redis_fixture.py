import redis

from tests.redis_procs import RedisServer


def test_fixture_server_is_real_and_restartable(redis_server: RedisServer, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("k", "v")
    assert client.get("k") == b"v"
    assert "redis_version" in client.info("server")
    redis_server.stop()
    assert not redis_server.ping()
    redis_server.start()
    assert redis_server.ping()
    client.close()
