"""The Redis client the store talks through: a single server or a Redis Cluster, from settings."""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from service.settings import Settings

try:  # redis[hiredis]: the C packer; a client without it packs in Python, as redis-py's asyncio client does
    from hiredis import pack_command as hiredis_pack
except ImportError:  # pragma: no cover - a serving install always has redis[hiredis]
    hiredis_pack = None  # type: ignore[assignment]


# A cluster node's connections beyond its gated commands (PacedRedisCluster): SPARE_CONNECTIONS - 1 pipelines (reads,
# deletes, alert XADDs, a write-back's one per master) at once per client, and one for the rare redirected calls and
# topology reads, which take a connection without a gate.
SPARE_CONNECTIONS = 8

# Set while a gated pipeline runs: redis-py's cluster pipeline answers a connection error by closing the whole client
# (every node's connections) before its retry, which PacedRedisCluster.aclose turns into a topology refresh instead.
_IN_PIPELINE: contextvars.ContextVar[bool] = contextvars.ContextVar("si_in_cluster_pipeline", default=False)


def connect_redis(url: str, settings: Settings) -> Any:
    """An asyncio client that reconnects by itself after Redis comes back (each call dials if needed).

    One retry on a connection error only: after a restart a pooled socket fails before the script ran.
    Timeouts are not retried, since a timed-out EVALSHA may have appended already. The cluster client
    gets the same policy instead of redis-py's default (3 tries, backoff from 1 s): with that default, a
    killed master's clicks hung for seconds and the topology refreshes they set off stalled every other
    slot too (docs/reliability.md, `session-intent bench failover`).
    """
    timeout = settings.redis_timeout_ms / 1000
    retry = Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))
    if settings.redis_cluster:
        return PacedRedisCluster.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                          max_connections=settings.redis_max_connections + SPARE_CONNECTIONS,
                                          calls_per_node=settings.redis_max_connections,
                                          pipelines=SPARE_CONNECTIONS - 1, retry=retry,
                                          min_refresh_s=settings.redis_cluster_refresh_ms / 1000,
                                          connection_wait_s=timeout)
    # Blocking pool: a burst past the bound waits (up to the timeout) for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(url, max_connections=settings.redis_max_connections, timeout=timeout,
                                           socket_timeout=timeout, socket_connect_timeout=timeout, retry=retry)
    pool.connection_class = hiredis_packing(pool.connection_class)
    return Redis.from_pool(pool)


class PacedRedisCluster(RedisCluster):  # type: ignore[misc]
    """A RedisCluster that refreshes its topology at most once per `min_refresh_s` after its first.

    redis-py (8.1) marks the whole client for a topology refresh on every connection error, and the next call on
    ANY slot first waits for that refresh, under one lock, before it is sent. With a master dead, each of its
    sessions' clicks fails and marks the client again, so every other master's clicks queued behind a refresh
    after each of them: 10-20 % of them passed the 250 ms deadline (504) through the whole failover, in
    `session-intent bench failover` runs on 2 cores (docs/reliability.md). Paced, the calls between two refreshes
    go by the last topology: the dead master's calls fail at once (503 with Retry-After, as before), the others
    go on, and the first call after the interval refreshes, so the promoted replica is found within it.

    A command past `calls_per_node` in flight on its node waits for one to finish, up to `connection_wait_s`, as
    the single server's BlockingConnectionPool does; redis-py's cluster node raises MaxConnectionsError at once
    when its `max_connections` are all in use (redis/redis-py#3135). Connections are dialled lazily, so at start-up
    under load (200 clicks/s) a node's first 32 calls were all still dialling and the next ones failed: 3-9 clicks
    answered 503 in the service's first second, and the write-back's calls (then one per slot, up to a batch's
    sessions at once) failed with them. Pipelines (`read_scores`, the alert stream, deletes, the write-back's one
    per master) wait likewise for one of
    `pipelines` slots of the client, so they use at most that many of a node's connections above `calls_per_node`;
    past it redis-py's pipeline would close the whole client on the MaxConnectionsError and retry. A MOVED/ASK
    redirect's second node and topology reads take the remaining spare connection without a gate.

    A pipeline that meets a connection error (a dead master, a full pool, a cluster-down or redirect error) does not
    close the client: redis-py's pipeline calls `aclose` before its one retry, 250 ms later, which would drop every
    node's connections under the calls in flight on the healthy masters; here any close inside a gated pipeline
    only marks the topology for a (paced) refresh. The retry re-sends the commands that got no answer: one whose
    answer was lost may run twice. The service's pipelines tolerate that (reads, deletes, XADDs of alerts, and the
    write-back, whose script writes the same values again; only an alert it raised the first time would not be
    raised again).
    """

    def __init__(self, *args: Any, min_refresh_s: float = 0.25, connection_wait_s: float = 1.0,
                 calls_per_node: int | None = None, pipelines: int | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.min_refresh_s = min_refresh_s
        self._refreshed_at: float | None = None  # time.monotonic() of the last good refresh; None: none, or it failed
        self.connection_wait_s = connection_wait_s
        self.calls_per_node = calls_per_node  # None: a node's whole pool
        self._node_gates: dict[str, asyncio.Semaphore] = {}  # per node name: its gated calls in flight
        self._pipeline_gate = asyncio.Semaphore(pipelines) if pipelines else None  # None: pipelines ungated

    async def _execute_command(self, target_node: ClusterNode, *args: Any, **kwargs: Any) -> Any:
        gate = self._node_gates.get(target_node.name)
        if gate is None:
            gate = asyncio.Semaphore(self.calls_per_node or target_node.max_connections)
            self._node_gates[target_node.name] = gate
        await self.acquire_slot(gate, target_node.name)
        try:
            return await super()._execute_command(target_node, *args, **kwargs)
        finally:
            gate.release()

    async def acquire_slot(self, gate: asyncio.Semaphore, what: str) -> None:
        """Acquire `gate`, waiting at most `connection_wait_s`; past it, fail as a full pool (a RedisError)."""
        if not gate.locked():  # only a call that must wait pays for a timer
            await gate.acquire()
            return
        try:
            async with asyncio.timeout(self.connection_wait_s):
                await gate.acquire()
        except TimeoutError:
            raise MaxConnectionsError(f"no free connection to {what} within {self.connection_wait_s:g} s") from None

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if self._pipeline_gate is None or shard_hint:  # redis-py refuses a shard hint itself
            return super().pipeline(transaction, shard_hint)
        return _GatedPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py's own

    async def initialize(self, *args: Any, **kwargs: Any) -> PacedRedisCluster:
        if self._refreshed_at is not None and time.monotonic() - self._refreshed_at < self.min_refresh_s:
            return self  # still marked: the first call after the interval refreshes
        if self._initialize:  # the mark is redis-py's own flag: only a refresh it asked for restarts the interval
            # A failed refresh (no node answered) leaves the client without a default node, so it is not paced:
            # the next call refreshes again and fails as a connection error (503), as redis-py alone would.
            self._refreshed_at = None
            await super().initialize(*args, **kwargs)
            self._refreshed_at = time.monotonic()
        return self

    async def aclose(self) -> None:
        """Close even while a refresh is deferred (redis-py closes only a client with no refresh pending); inside a
        gated pipeline's retry, only mark the topology for a refresh."""
        if _IN_PIPELINE.get():
            self._initialize = True
            return
        self._initialize = False
        self._refreshed_at = None
        await super().aclose()


class _GatedPipeline(ClusterPipeline):  # type: ignore[misc]
    """A cluster pipeline that runs only while it holds one of its client's pipeline slots."""

    def __init__(self, client: PacedRedisCluster, transaction: Any | None) -> None:
        super().__init__(client, transaction)
        self._client = client

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        gate = self._client._pipeline_gate
        assert gate is not None  # PacedRedisCluster.pipeline makes this class only with a gate
        await self._client.acquire_slot(gate, "a pipeline slot")
        inside = _IN_PIPELINE.set(True)
        try:
            return await super().execute(raise_on_error, allow_redirections)
        finally:
            _IN_PIPELINE.reset(inside)
            gate.release()


def hiredis_packing(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """`connection_class` packing commands with hiredis (the bytes are the same), as redis-py's sync client does.

    redis-py's asyncio connection packs every command in Python, argument by argument: a click's EVALSHA (six
    keys, eighteen arguments) spent about ten times longer there than in hiredis.pack_command, and a batch's
    write_scores more (docs/benchmarks/id-path.md). What hiredis does not take (a command name with a space, such
    as "SCRIPT LOAD"; a memoryview; a bool, which redis-py refuses) goes to redis-py's own packer, so its errors
    stay redis-py's. Without hiredis the class is returned as it is.
    """
    if hiredis_pack is None:
        return connection_class
    pack = hiredis_pack

    class HiredisPacking(connection_class):  # type: ignore[valid-type,misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            name = args[0]
            if isinstance(name, str | bytes) and (" " in name if isinstance(name, str) else b" " in name):
                return super().pack_command(*args)
            try:
                return [pack(args)]
            except TypeError:
                return super().pack_command(*args)

    HiredisPacking.__name__ = HiredisPacking.__qualname__ = f"HiredisPacking{connection_class.__name__}"
    return HiredisPacking
