"""A burst past a cluster node's connection bound waits for a free connection (service/store/client.py), against a
real local Redis Cluster: redis-py's own cluster client fails the calls past the bound at once, which the service
answered as 503s in its first second under load, while its connections were still being dialled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import MaxConnectionsError

from service.settings import Settings
from service.store.client import PacedRedisCluster, connect_redis
from tests.cluster_procs import RedisClusterProcs, start_cluster_or_skip

POOL = 2  # connections per node
BURST = 40  # concurrent calls, all on one slot
KEY = "{burst}:k"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcs]:
    procs = start_cluster_or_skip(Path(tmp_path_factory.mktemp("cluster")))
    try:
        yield procs
    finally:
        procs.stop()


async def _pipeline(client: RedisCluster) -> int:
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(KEY)
        pipe.ttl(KEY)
        await pipe.execute()
    return 1


async def _burst(client: RedisCluster) -> tuple[int, int, int]:
    """(calls answered, MaxConnectionsError, the node's connections afterwards) for BURST concurrent calls on one
    node."""
    await client.initialize()
    try:
        outcomes = await asyncio.gather(*(client.incr(KEY) for _ in range(BURST)), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, MaxConnectionsError):
                raise outcome
        node = client.get_node_from_key(KEY)
        return (sum(isinstance(o, int) for o in outcomes), sum(isinstance(o, MaxConnectionsError) for o in outcomes),
                len(node._connections))
    finally:
        await client.aclose()


@pytest.mark.slow
def test_a_burst_past_the_bound_waits_for_a_connection(cluster: RedisClusterProcs) -> None:
    host, port = cluster.startup_node
    plain = asyncio.run(_burst(RedisCluster(host=host, port=port, max_connections=POOL)))
    waited = asyncio.run(_burst(PacedRedisCluster(host=host, port=port, max_connections=POOL)))
    assert plain[1] > 0, plain  # the premise: redis-py alone fails the calls past the bound
    assert waited == (BURST, 0, POOL), waited  # every call answered, over no more connections than the bound


@pytest.mark.slow
def test_a_burst_of_pipelines_waits_beside_busy_commands(cluster: RedisClusterProcs) -> None:
    """With every gated command's connection busy (BLPOPs held 1 s), a burst of pipelines, many more than the
    spare connections, is served from them at once, a few at a time; none fails (a pipeline's MaxConnectionsError
    would make redis-py close the whole client, the BLPOPs' connections with it)."""
    host, port = cluster.startup_node
    burst = 30
    settings = Settings(redis_cluster=True, redis_max_connections=POOL, redis_timeout_ms=3000)

    async def pipelines_while_the_gate_is_full() -> tuple[list[object], list[object], float]:
        client = connect_redis(f"redis://{host}:{port}/0", settings)
        await client.initialize()
        try:
            holders = [asyncio.ensure_future(client.blpop([f"{KEY}:list{i}"], timeout=1)) for i in range(POOL)]
            await asyncio.sleep(0.1)
            began = time.monotonic()
            outcomes = await asyncio.gather(*(_pipeline(client) for _ in range(burst)), return_exceptions=True)
            took = time.monotonic() - began
            return outcomes, await asyncio.gather(*holders, return_exceptions=True), took
        finally:
            await client.aclose()

    outcomes, held, took = asyncio.run(pipelines_while_the_gate_is_full())
    assert outcomes == [1] * burst, outcomes
    assert held == [None] * POOL, held  # the commands' connections were never closed under them
    assert took < 0.8, took  # served beside the BLPOPs, not after they let go


@pytest.mark.slow
def test_a_call_that_waits_past_its_limit_fails_as_a_redis_error(cluster: RedisClusterProcs) -> None:
    """The wait is bounded: a call still without a connection after `connection_wait_s` fails with
    MaxConnectionsError (a RedisError: the service answers 503 with Retry-After), and the bound is intact after."""
    host, port = cluster.startup_node

    async def blocked_then_free() -> tuple[float, int]:
        client = PacedRedisCluster(host=host, port=port, max_connections=1, connection_wait_s=0.1, socket_timeout=5)
        await client.initialize()
        try:
            holder = asyncio.ensure_future(client.blpop([KEY + ":list"], timeout=1))  # holds the one connection 1 s
            await asyncio.sleep(0.05)
            began = time.monotonic()
            with pytest.raises(MaxConnectionsError):
                await client.get(KEY)
            waited = time.monotonic() - began
            assert await holder is None
            return waited, int(await client.get(KEY) or 0)  # the connection is free again
        finally:
            await client.aclose()

    waited, _ = asyncio.run(blocked_then_free())
    assert 0.09 <= waited < 0.9, waited
