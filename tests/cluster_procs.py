"""A real Redis Cluster for tests; the helper (bench/procs/redis_cluster.py) serves the failover benchmark too."""

from bench.procs.redis_cluster import RedisClusterProcs, free_cluster_ports, manifest_failover_args

__all__ = ["RedisClusterProcs", "free_cluster_ports", "manifest_failover_args"]
