"""A real Redis Cluster for tests; the helper (bench/procs/redis_cluster.py) serves the failover benchmark too."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.procs.redis_cluster import RedisClusterProcs, free_cluster_ports, manifest_failover_args
from service.store.embedded import redis_binary

__all__ = ["RedisClusterProcs", "free_cluster_ports", "manifest_failover_args", "start_cluster_or_skip"]


def start_cluster_or_skip(directory: Path) -> RedisClusterProcs:
    """A started 6-node cluster in `directory`; the test is skipped where redis-server/cli are missing."""
    try:
        redis_binary("redis-server"), redis_binary("redis-cli")
    except RuntimeError as exc:
        pytest.skip(f"cannot build a Redis Cluster here: {exc}")
    return RedisClusterProcs(directory).start()
