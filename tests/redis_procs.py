"""Real redis-server processes for tests; the helper lives in bench/procs/redis_server.py, which the benchmarks use
too, and the binary is the service's own choice (service/store/embedded.py)."""

from bench.procs.redis_server import RedisServer, free_port
from service.store.embedded import redis_binary

__all__ = ["RedisServer", "free_port", "redis_binary"]
