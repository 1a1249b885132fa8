"""Redis Cluster failover under load (docs/reliability.md): SIGKILL one master of 3 (1 replica each).

The cluster runs with the failover directives of deploy/k8s/redis-cluster.yaml (tests/cluster_procs.py
reads them: node timeout, `cluster-require-full-coverage no`, no persistence). The real service
(`session-intent serve`, SI_REDIS_CLUSTER=true) takes Poisson clicks over many sessions; at `kill_at_s`
the master serving the first session's slot gets SIGKILL and is not restarted, so its replica must be
promoted and the service must find it. Clicks are split by the node that owned their session's slot
before the kill: the other masters' sessions must keep answering 200 throughout.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis.asyncio
from redis.cluster import RedisCluster
from redis.exceptions import RedisError

from bench.load.clicks import Click, LoadRecord
from bench.load.open_loop import OpenLoopPlan, session_id
from bench.procs.redis_cluster import RedisClusterProcs, manifest_failover_args
from bench.procs.redis_server import free_port
from bench.procs.servers import ServerSpec, running_server, server_spec
from bench.reliability.ack_audit import AckAudit, audit_acknowledged
from bench.reliability.probe import Probe, drive_under_fault, fault_load
from model.artifacts import DEFAULT_MODEL_DIR
from service.store.keys import DEFAULT_PREFIX, KeyScheme

log = logging.getLogger(__name__)

AUDIT_TIMEOUT_S = 20.0  # promotion lag after the load ends, on a loaded machine
FAILOVER_LOAD = fault_load(rate=200.0, sessions=300, duration_s=30.0, session_prefix="fo")


@dataclass(frozen=True)
class FailoverPlan:
    load: OpenLoopPlan = FAILOVER_LOAD
    kill_at_s: float = 8.0
    model_dir: Path = DEFAULT_MODEL_DIR


@dataclass
class FailoverResult:
    plan: FailoverPlan
    load: LoadRecord
    audit: AckAudit
    probes: list[Probe]
    killed_at: float
    victim_sessions: frozenset[str]  # sessions whose slot the killed master served
    node_timeout_ms: int
    tracebacks: int
    service_log: str  # what the service logged (warnings and up)
    # The masters' own counters from the load's start to the kill: (socket reads, EVALSHA calls).
    master_traffic: tuple[int, int] = (0, 0)

    def clicks(self, victim: bool, since: float = 0.0) -> list[Click]:
        return [c for c in self.load.clicks if (c.session in self.victim_sessions) == victim and c.t >= since]

    def statuses(self, victim: bool, since: float = 0.0) -> dict[int, int]:
        counts: dict[int, int] = {}
        for click in self.clicks(victim, since):
            counts[click.status] = counts.get(click.status, 0) + 1
        return dict(sorted(counts.items()))

    def unavailable_span_s(self) -> tuple[float, float] | None:
        """(first, last) send time, relative to the kill, of a failed click on the killed master's sessions."""
        failed = [c.t for c in self.clicks(True, self.killed_at) if c.status != 200]
        return (min(failed) - self.killed_at, max(failed) - self.killed_at) if failed else None

    def first_ok_after_kill_s(self) -> float | None:
        """When a click on the killed master's sessions, sent after its last failure, first answered 200."""
        span = self.unavailable_span_s()
        since = self.killed_at + (span[1] if span else 0.0)
        done = [c.t + c.latency_s for c in self.clicks(True, since) if c.status == 200]
        return min(done) - self.killed_at if done else None

    def others_ok_share(self) -> float:
        """Share of the other masters' clicks after the kill that answered 200."""
        others = self.clicks(False, self.killed_at)
        return sum(c.status == 200 for c in others) / len(others) if others else float("nan")

    def per_click_before_kill(self) -> tuple[float, float]:
        """(the masters' reads, their EVALSHAs) per click answered 200 before the kill: a read is one round trip
        of one connection, however many commands it carried, so the two differ by what clients pipelined."""
        answered = sum(c.status == 200 for c in self.load.clicks if c.t + c.latency_s < self.killed_at)
        reads, scripts = self.master_traffic
        return (reads / answered, scripts / answered) if answered else (float("nan"), float("nan"))

    def p99_ms(self, victim: bool, status: int) -> float:
        ms = [c.latency_s * 1000 for c in self.clicks(victim, self.killed_at) if c.status == status]
        return float(np.percentile(ms, 99)) if ms else float("nan")


def _audit_after_promotion(procs: RedisClusterProcs, record: LoadRecord, stack: ExitStack,
                           timeout_s: float = AUDIT_TIMEOUT_S) -> AckAudit:
    """The acknowledged-click audit, once the cluster answers for every slot again.

    On a loaded machine the replica's promotion can still be under way when the load ends; a client
    whose slot map still names the dead master then fails. Retry with a fresh client until it answers.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        alive = next(n for n in procs.nodes if n.proc is not None)
        client = RedisCluster(host="127.0.0.1", port=alive.port)
        stack.callback(client.close)
        try:
            return audit_acknowledged(client, record.clicks, DEFAULT_PREFIX)
        except RedisError:
            if time.monotonic() > deadline:
                raise
            log.info("cluster not settled yet after the failover; retrying the audit")
            time.sleep(0.5)


def _cluster_spec(url: str, model_dir: Path) -> ServerSpec:
    base = server_spec("service", url, model_dir)
    return ServerSpec(base.name, base.argv, {**base.env, "SI_REDIS_CLUSTER": "true"})


async def _masters_traffic(procs: RedisClusterProcs) -> tuple[int, int]:
    """(total_reads_processed, EVALSHA calls) summed over the running masters (INFO stats, INFO commandstats)."""
    reads = scripts = 0
    for node in procs.nodes:
        if node.proc is None:
            continue
        async with redis.asyncio.Redis(host="127.0.0.1", port=node.port) as client:
            if (await client.info("replication"))["role"] != "master":
                continue
            reads += (await client.info("stats"))["total_reads_processed"]
            scripts += (await client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    return reads, scripts


async def _kill(procs: RedisClusterProcs, victim_port: int, plan: FailoverPlan, started: float,
                killed: list[float], traffic: list[tuple[int, int]]) -> None:
    traffic.append(await _masters_traffic(procs))
    await asyncio.sleep(plan.kill_at_s - (time.monotonic() - started))
    traffic.append(await _masters_traffic(procs))
    victim = next(n for n in procs.nodes if n.port == victim_port)
    assert victim.proc is not None
    victim.proc.kill()
    victim.proc.wait()
    victim.proc = None
    killed.append(time.monotonic() - started)
    log.info("master on port %d SIGKILLed at %.2f s", victim_port, killed[0])


def run_failover(plan: FailoverPlan) -> FailoverResult:
    """One bounded run on a fresh 6-node cluster; every process it starts is stopped before it returns."""
    if not 0 < plan.kill_at_s < plan.load.duration_s:
        raise ValueError("need 0 < kill_at_s < duration_s")
    cluster_args = manifest_failover_args()
    node_timeout_ms = int(cluster_args[cluster_args.index("--cluster-node-timeout") + 1])
    with tempfile.TemporaryDirectory(prefix="si-failover-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        procs = RedisClusterProcs(work / "cluster", extra_args=cluster_args).start()
        stack.callback(procs.stop)
        keys = KeyScheme()
        sessions = [session_id(plan.load, i) for i in range(plan.load.sessions)]
        owners = {s: procs.master_of(keys.session(s).meta).port for s in sessions}
        victim_port = owners[sessions[0]]
        host, port = procs.startup_node
        service = stack.enter_context(running_server(_cluster_spec(f"redis://{host}:{port}/0", plan.model_dir),
                                                     free_port(), work))
        killed: list[float] = []
        traffic: list[tuple[int, int]] = []
        kill = lambda started: _kill(procs, victim_port, plan, started, killed, traffic)  # noqa: E731
        record, probes = asyncio.run(drive_under_fault(service.url, service.proc.pid, plan.load, kill))
        audit = _audit_after_promotion(procs, record, stack)
        service_log = service.log_path.read_text(errors="replace")
    victims = frozenset(s for s, p in owners.items() if p == victim_port)
    (reads_0, scripts_0), (reads_1, scripts_1) = traffic
    return FailoverResult(plan, record, audit, probes, killed[0], victims, node_timeout_ms,
                          service_log.count("Traceback"), service_log, (reads_1 - reads_0, scripts_1 - scripts_0))
