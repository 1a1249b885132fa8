"""Real redis-server processes for tests; the helper lives in bench/redis_server.py, which the benchmarks use too."""

from bench.redis_server import RedisServer, free_port, redis_binary

__all__ = ["RedisServer", "free_port", "redis_binary"]
