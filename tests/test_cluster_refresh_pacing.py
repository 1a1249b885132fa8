"""The cluster client's topology refreshes, paced (service/store/client.py), against a real local Redis Cluster with
one master killed: redis-py asks for a refresh on every connection error, and a call on a healthy master waits for
each one. Paced, the dead master's calls still fail at once, the healthy master's still answer, and the refreshes
come at most once per interval instead of once per failure."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis.cluster
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from service.settings import Settings
from service.store.client import PacedRedisCluster, connect_redis
from tests.cluster_procs import RedisClusterProcs, start_cluster_or_skip

NODE_TIMEOUT_MS = 30_000  # no replica is promoted while the test runs, however slow the machine
PACED_S = 0.6
UNPACED_FAILURES = 6
INTERVAL_S = 0.25


class _CountedRefreshes(RedisCluster):  # type: ignore[misc]
    """Counts the refreshes redis-py's own `initialize` makes (it refreshes only while marked)."""

    refreshes = 0

    async def initialize(self, *args: Any, **kwargs: Any) -> Any:
        self.refreshes += self._initialize
        return await super().initialize(*args, **kwargs)


class _Counted(PacedRedisCluster, _CountedRefreshes):  # type: ignore[misc]
    """PacedRedisCluster over the counter: its super().initialize is the counter's, then redis-py's."""


async def _calls_with_a_dead_master(procs: RedisClusterProcs, dead_key: str, live_key: str, min_refresh_s: float,
                                    seconds: float, max_failures: int | None = None) -> tuple[int, int, int, float]:
    """(topology refreshes, failed calls on the dead master, answered calls on a live one, seconds taken): a dead
    call then a live one, for `seconds` or until `max_failures` dead calls failed."""
    host, port = procs.startup_node
    client = _Counted(host=host, port=port, min_refresh_s=min_refresh_s, socket_timeout=0.5,
                      socket_connect_timeout=0.5,
                      retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)))
    await client.initialize()
    client.refreshes = 0
    failed = answered = 0
    started = time.monotonic()
    deadline = started + seconds
    try:
        while time.monotonic() < deadline and (max_failures is None or failed < max_failures):
            try:
                await client.get(dead_key)
            except RedisConnectionError:
                failed += 1
            answered += await client.get(live_key) == b"1"
    finally:
        await client.aclose()
    return client.refreshes, failed, answered, round(time.monotonic() - started, 3)


@pytest.mark.slow
def test_a_dead_masters_errors_refresh_the_topology_once_per_interval_not_once_per_call(tmp_path: Path) -> None:
    procs = start_cluster_or_skip(tmp_path, node_timeout_ms=NODE_TIMEOUT_MS)
    try:
        dead_key = "k-0"
        dead = procs.master_of(dead_key)
        live_key = next(k for k in (f"k-{i}" for i in range(1, 50)) if procs.master_of(k).port != dead.port)
        with redis.cluster.RedisCluster(*procs.startup_node) as sync_client:
            sync_client.set(live_key, "1")
        assert dead.proc is not None
        dead.proc.kill()
        dead.proc.wait()
        dead.proc = None
        paced = asyncio.run(_calls_with_a_dead_master(procs, dead_key, live_key, INTERVAL_S, PACED_S))
        unpaced = asyncio.run(_calls_with_a_dead_master(procs, dead_key, live_key, 0.0, 30.0, UNPACED_FAILURES))
    finally:
        procs.stop()
    print(f"\nunpaced {unpaced}, paced {paced} (refreshes, failed, answered, seconds)")
    # Unpaced (redis-py's own behaviour): at least one refresh after every failed call (two with the retry).
    assert unpaced[1] == UNPACED_FAILURES and unpaced[0] >= unpaced[1], unpaced
    # Paced: the dead master's calls fail at once, the live master's answer between them, and the refreshes
    # come once per interval at most, however many calls failed.
    refreshes, failed, answered, _ = paced
    assert failed >= UNPACED_FAILURES and answered == failed, paced
    assert refreshes <= PACED_S / INTERVAL_S + 2, paced


@pytest.mark.slow
def test_a_cluster_gone_whole_fails_every_call_as_a_redis_error(tmp_path: Path) -> None:
    """With every node gone, each call inside a long interval still fails as a Redis error (the service's 503),
    never as another exception (a 500): the refreshes no node answers leave the client without a default node."""
    procs = start_cluster_or_skip(tmp_path)

    async def calls_after_the_cluster_is_gone() -> list[str]:
        host, port = procs.startup_node
        client = PacedRedisCluster(host=host, port=port, min_refresh_s=10.0, socket_timeout=0.5,
                                   socket_connect_timeout=0.5,
                                   retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)))
        await client.initialize()
        await client.set("k", "1")
        procs.stop()
        errors = []
        try:
            for key in ("k", "k", "other", "k", "other"):
                try:
                    await client.get(key)
                except RedisError as exc:
                    errors.append(type(exc).__name__)
            try:
                await client.ping()
            except RedisError as exc:
                errors.append(type(exc).__name__)
        finally:
            await client.aclose()
        return errors

    try:
        errors = asyncio.run(calls_after_the_cluster_is_gone())
    finally:
        procs.stop()
    assert len(errors) == 6, errors  # every call failed, each as a RedisError (anything else propagates: red)


@pytest.mark.slow
def test_a_pipeline_that_meets_a_dead_master_leaves_the_live_masters_calls_alone(tmp_path: Path) -> None:
    """redis-py's cluster pipeline closes the whole client before retrying a connection error, so one pipeline
    touching a dead master (a write-back, a /risk read) cut the live masters' calls in flight, which the client's
    one retry then sent again. The service's client only marks the topology for a refresh: a call in flight on a
    live master is sent once and answered on its own connection."""
    procs = start_cluster_or_skip(tmp_path, node_timeout_ms=NODE_TIMEOUT_MS)
    settings = Settings(redis_cluster=True, redis_timeout_ms=3000)  # past the BLPOP held below

    async def pipeline_beside_a_live_call(dead_key: str, live_key: str, live_port: int) -> tuple[object, int]:
        host, port = procs.startup_node
        client = connect_redis(f"redis://{host}:{port}/0", settings)
        await client.initialize()
        try:
            holder = asyncio.ensure_future(client.blpop([f"{{{live_key}}}:list"], timeout=1))
            await asyncio.sleep(0.1)
            with pytest.raises(RedisError):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.get(live_key)
                    pipe.get(dead_key)
                    await pipe.execute()
            held = (await asyncio.gather(holder, return_exceptions=True))[0]
            with redis.Redis(host=host, port=live_port) as probe:
                return held, probe.info("commandstats").get("cmdstat_blpop", {}).get("calls", 0)
        finally:
            await client.aclose()

    try:
        dead_key = "k-0"
        dead = procs.master_of(dead_key)
        live_key = next(k for k in (f"k-{i}" for i in range(1, 50)) if procs.master_of(k).port != dead.port)
        assert dead.proc is not None
        dead.proc.kill()
        dead.proc.wait()
        dead.proc = None
        held, blpops = asyncio.run(pipeline_beside_a_live_call(dead_key, live_key, procs.master_of(live_key).port))
    finally:
        procs.stop()
    assert held is None, held  # the BLPOP ran to its own timeout
    assert blpops == 1, blpops  # sent once: its connection was not closed under it (2 with redis-py's close)
