"""A real local Redis Cluster for the failover benchmark and the cluster tests: redis-server processes joined by
`redis-cli --cluster create`."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis
import yaml

from bench.procs.redis_server import RedisServer, redis_binary
from model.artifacts import REPO_ROOT

BUS_PORT_OFFSET = 10000  # Redis Cluster's node-to-node bus listens on port + 10000
MANIFEST = REPO_ROOT / "deploy" / "k8s" / "redis-cluster.yaml"
# The directives of the Kubernetes redis.conf that decide what a failover does; the failover tests run
# with exactly these. The rest is pod plumbing (port, hostnames, paths) or memory sizing.
FAILOVER_DIRECTIVES = ("cluster-node-timeout", "cluster-require-full-coverage", "appendonly", "save")


def manifest_failover_args() -> tuple[str, ...]:
    """FAILOVER_DIRECTIVES as redis-server arguments, read from deploy/k8s/redis-cluster.yaml's ConfigMap."""
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "redis-cluster-config")
    args: list[str] = []
    for line in config["data"]["redis.conf"].splitlines():
        name, _, value = line.strip().partition(" ")
        if name in FAILOVER_DIRECTIVES:
            args += [f"--{name}", value.strip().strip('"')]
    missing = set(FAILOVER_DIRECTIVES) - {a.removeprefix("--") for a in args[::2]}
    if missing:
        raise RuntimeError(f"{MANIFEST} sets no {sorted(missing)}: the failover tests would not match it")
    return tuple(args)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int, low: int = 20000, high: int = 30000) -> list[int]:
    """`count` loopback ports whose cluster bus ports (+10000) are free too; the OS picks ephemeral ones too high."""
    start = low + (int(time.monotonic_ns()) // 1000) % (high - low)  # spread runs that overlap in time
    ports: list[int] = []
    for offset in range(high - low):
        port = low + (start - low + offset) % (high - low)
        if _port_is_free(port) and _port_is_free(port + BUS_PORT_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free port pairs in {low}..{high}")


class RedisClusterProcs:
    """`masters * (1 + replicas)` cluster-mode redis-servers in tmp dirs; `start()` creates the cluster."""

    def __init__(self, workdir: Path, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 2000,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.replicas = replicas
        ports = free_cluster_ports(masters * (1 + replicas))
        cluster_args = (
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms), *extra_args,  # later arguments win
        )
        self.nodes = [RedisServer(workdir / f"node-{p}", port=p, extra_args=cluster_args) for p in ports]

    @property
    def startup_node(self) -> tuple[str, int]:
        return "127.0.0.1", self.nodes[0].port

    def start(self, timeout_s: float = 30.0) -> RedisClusterProcs:
        try:
            for node in self.nodes:
                node.start()
            self._create(timeout_s)
            self._wait_until_ok(timeout_s)
        except Exception:
            self.stop()
            raise
        return self

    def _create(self, timeout_s: float) -> None:
        args = [
            redis_binary("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
            "--cluster-replicas", str(self.replicas), "--cluster-yes",
        ]
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
            raise RuntimeError(f"redis-cli --cluster create failed ({done.returncode}): {done.stdout}{done.stderr}")

    def _wait_until_ok(self, timeout_s: float) -> None:
        """Every node reports cluster_state:ok and knows every other node, and every replica has synced.

        A replica that never completed its first sync cannot be promoted: a failover test that kills a
        master before then tests nothing. Redis 7 delays a diskless sync by 5 s (repl-diskless-sync-delay),
        Redis 6 syncs at once; both are waited for here.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self._node_ready(n.port) for n in self.nodes):
                return
            time.sleep(0.05)
        raise RuntimeError(f"cluster did not reach cluster_state:ok within {timeout_s}s")

    def _node_ready(self, port: int) -> bool:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        try:
            info = client.cluster("INFO")
            if info["cluster_state"] != "ok" or int(info["cluster_known_nodes"]) != len(self.nodes):
                return False
            replication = client.info("replication")
            return replication["role"] == "master" or replication.get("master_link_status") == "up"
        except redis.RedisError:
            return False
        finally:
            client.close()

    def master_of(self, key: str) -> RedisServer:
        """The node serving `key`'s slot now, as the startup node's CLUSTER SLOTS says."""
        client = redis.Redis(host="127.0.0.1", port=self._answering_port(), socket_timeout=1)
        try:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    port = int(master[1])
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise RuntimeError(f"no node serves the slot of {key!r}")

    def _answering_port(self) -> int:
        return next(n.port for n in self.nodes if n.proc is not None and n.ping())

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
