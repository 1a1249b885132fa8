"""A real Redis Cluster for tests; the helper (bench/procs/redis_cluster.py) serves the failover benchmark too."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis

from bench.procs.redis_cluster import RedisClusterProcs, free_cluster_ports, manifest_failover_args
from bench.procs.round_trips import RoundTripCounter
from service.store.embedded import redis_binary

__all__ = ["ClusterRoundTrips", "RedisClusterProcs", "free_cluster_ports", "manifest_failover_args",
           "start_cluster_or_skip"]


def start_cluster_or_skip(directory: Path, node_timeout_ms: int = 2000) -> RedisClusterProcs:
    """A started 6-node cluster in `directory`; the test is skipped where redis-server/cli are missing."""
    try:
        redis_binary("redis-server"), redis_binary("redis-cli")
    except RuntimeError as exc:
        pytest.skip(f"cannot build a Redis Cluster here: {exc}")
    return RedisClusterProcs(directory, node_timeout_ms=node_timeout_ms).start()


class ClusterRoundTrips:
    """The commands clients send to every master of a cluster, summed (bench/procs/round_trips.py on each)."""

    def __init__(self, counters: list[RoundTripCounter]) -> None:
        self._counters = counters

    def take(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counter in self._counters:
            total += counter.take()
        return total


@contextmanager
def cluster_round_trips(procs: RedisClusterProcs) -> Iterator[ClusterRoundTrips]:
    """Count from the clients' side on every master (replicas serve no client here)."""
    with ExitStack() as stack:
        counters = []
        for node in procs.nodes:
            client = stack.enter_context(redis.Redis(host="127.0.0.1", port=node.port))
            if client.info("replication")["role"] == "master":
                counters.append(stack.enter_context(RoundTripCounter(client)))
        yield ClusterRoundTrips(counters)
