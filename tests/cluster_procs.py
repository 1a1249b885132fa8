"""A real Redis Cluster for tests; the helper lives in bench/redis_cluster.py, which the failover benchmark uses too."""

from bench.redis_cluster import RedisClusterProcs, free_cluster_ports, manifest_failover_args

__all__ = ["RedisClusterProcs", "free_cluster_ports", "manifest_failover_args"]
