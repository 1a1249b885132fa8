"""Shared fixtures: a real redis-server per test module, and a real Redis Cluster for the modules that ask for one,
started and stopped by the tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.redis_procs import RedisServer

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster

    from tests.cluster_procs import RedisClusterProcs


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of a flushed database on the module's server."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def shared_data_dir() -> Path | None:
    """../shared/data beside the repo, where the real clickstream lives; None for users without it."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny nets gain nothing from threads, and the shared 2-core box loses a lot to oversubscription."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcs]:
    """A six-node Redis Cluster (3 masters, 3 replicas) per test module that asks for one."""
    from tests.cluster_procs import start_cluster_or_skip  # the cluster helpers only where a module asks for one

    started = time.monotonic()
    procs = start_cluster_or_skip(tmp_path_factory.mktemp("cluster"))
    print(f"\n6-node cluster up in {time.monotonic() - started:.2f}s")
    yield procs
    procs.stop()


@pytest.fixture()
async def cluster_client(cluster: RedisClusterProcs) -> AsyncIterator[RedisCluster]:
    """A client of the module's cluster, flushed."""
    from redis.asyncio.cluster import RedisCluster

    host, port = cluster.startup_node
    client = RedisCluster(host=host, port=port)
    await client.flushall()
    yield client
    await client.aclose()
