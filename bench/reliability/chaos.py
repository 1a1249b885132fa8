"""Redis crash under load (docs/reliability.md): SIGKILL redis-server mid-run, restart it on its data dir.

One run: a real redis-server with the AOF on (`appendfsync` always or everysec), the real service
(`session-intent serve` in a subprocess) and the Poisson click load of bench/load/open_loop.py. At
`kill_at_s` redis-server gets SIGKILL; at `restart_at_s` it starts again on the same directory and
port, replaying its AOF. A probe samples /readyz and the service's RSS every 100 ms throughout
(bench/reliability/probe.py).
Afterwards every acknowledged click is looked up in Redis (bench/reliability/ack_audit.py).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import redis

from bench.load.clicks import LoadRecord
from bench.load.open_loop import OpenLoopPlan
from bench.load.wrk import run_wrk
from bench.procs.redis_server import RedisServer, free_port
from bench.procs.servers import running_server, server_spec
from bench.reliability.ack_audit import AckAudit, audit_acknowledged
from bench.reliability.probe import Probe, drive_under_fault, fault_load
from model.artifacts import DEFAULT_MODEL_DIR

log = logging.getLogger(__name__)

FSYNC_POLICIES = ("always", "everysec")
CHAOS_LOAD = fault_load(rate=300.0, sessions=500, duration_s=25.0, session_prefix="chaos")


@dataclass(frozen=True)
class ChaosPlan:
    appendfsync: str = "always"
    load: OpenLoopPlan = CHAOS_LOAD
    kill_at_s: float = 10.0
    restart_at_s: float = 15.0
    model_dir: Path = DEFAULT_MODEL_DIR


@dataclass
class ChaosResult:
    plan: ChaosPlan
    load: LoadRecord
    audit: AckAudit
    probes: list[Probe]
    killed_at: float  # seconds since the load started, as they happened
    restarted_at: float  # redis-server was spawned again
    tracebacks: int  # "Traceback" lines in the service's log
    notes: list[str] = field(default_factory=list)

    def outage(self) -> tuple[float, float]:
        return self.killed_at, self.restarted_at

    def server_errors(self) -> int:
        """Answers ≥ 500 other than a 503 or 504 (the designed answers to a dependency or a deadline)."""
        return sum(n for status, n in self.load.statuses().items() if status >= 500 and status not in (503, 504))

    def unavailable_without_retry_after(self) -> int:
        return sum(1 for c in self.load.clicks if c.status == 503 and not c.retry_after)

    def first_ok_after_restart_s(self) -> float | None:
        """Seconds from the restart of Redis to the first click answered 200 that was sent after the kill."""
        done = [c.t + c.latency_s for c in self.load.clicks if c.status == 200 and c.t >= self.killed_at]
        return min(done) - self.restarted_at if done else None

    def ready_again_s(self) -> float | None:
        back = [p.t for p in self.probes if p.t >= self.restarted_at and p.ready_status == 200]
        return min(back) - self.restarted_at if back else None

    def ready_red_during_outage(self) -> bool:
        """No /readyz probe answered 200 while Redis was down (503, or no answer within the probe's 1 s)."""
        inside = [p for p in self.probes if self.killed_at + 0.5 <= p.t < self.restarted_at]
        return bool(inside) and all(p.ready_status != 200 for p in inside)

    def probe_timeouts(self) -> int:
        return sum(p.ready_status == 0 for p in self.probes)

    def rss_mb(self, since: float, until: float) -> float:
        values = [p.rss_mb for p in self.probes if since <= p.t < until]
        return max(values) if values else float("nan")

    def outage_p99_ms(self) -> float:
        ms = self.load.latency_ms(503, *self.outage())
        return float(np.percentile(ms, 99)) if ms.size else float("nan")


def redis_with_aof(workdir: Path, appendfsync: str) -> RedisServer:
    if appendfsync not in FSYNC_POLICIES:
        raise ValueError(f"appendfsync must be one of {FSYNC_POLICIES}")
    return RedisServer(workdir, extra_args=("--appendonly", "yes", "--appendfsync", appendfsync))


def sigkill(server: RedisServer) -> None:
    """SIGKILL: no shutdown, no final AOF flush; what the kernel already has is all that survives."""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.proc = None


async def _faults(server: RedisServer, plan: ChaosPlan, started: float, marks: dict[str, float]) -> None:
    await asyncio.sleep(plan.kill_at_s)
    sigkill(server)
    marks["killed"] = time.monotonic() - started
    log.info("redis-server SIGKILLed at %.2f s", marks["killed"])
    await asyncio.sleep(max(plan.restart_at_s - marks["killed"], 0))
    marks["restarted"] = time.monotonic() - started  # spawned now; the AOF replay counts against recovery
    await asyncio.to_thread(server.start)  # same port and dir: replays the AOF
    log.info("redis-server restarted at %.2f s, answering after %.2f s", marks["restarted"],
             time.monotonic() - started - marks["restarted"])


def run_chaos(plan: ChaosPlan) -> ChaosResult:
    """One bounded run; every process it starts is stopped before it returns."""
    if not 0 < plan.kill_at_s < plan.restart_at_s < plan.load.duration_s:
        raise ValueError("need 0 < kill_at_s < restart_at_s < duration_s")
    with tempfile.TemporaryDirectory(prefix="si-chaos-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        server = redis_with_aof(work / "redis", plan.appendfsync).start()
        stack.callback(server.stop)
        service = stack.enter_context(running_server(server_spec("service", server.url, plan.model_dir),
                                                     free_port(), work))
        marks: dict[str, float] = {}
        record, probes = asyncio.run(drive_under_fault(service.url, service.proc.pid, plan.load,
                                                       lambda started: _faults(server, plan, started, marks)))
        client = redis.Redis.from_url(server.url)
        stack.callback(client.close)
        audit = audit_acknowledged(client, record.clicks)
        tracebacks = service.log_path.read_text(errors="replace").count("Traceback")
    return ChaosResult(plan, record, audit, probes, marks["killed"], marks["restarted"], tracebacks)


@dataclass(frozen=True)
class Throughput:
    appendfsync: str
    round: int
    clicks_per_s: float
    p99_ms: float


def run_fsync_throughput(model_dir: Path, concurrency: int, duration_s: float, rounds: int) -> list[Throughput]:
    """Closed-loop saturation (wrk, `concurrency` connections) of the service on an AOF Redis, `always` and
    `everysec` interleaved round by round."""
    out: list[Throughput] = []
    with tempfile.TemporaryDirectory(prefix="si-fsync-") as tmp:
        work = Path(tmp)
        for round_no in range(rounds):
            for policy in FSYNC_POLICIES:
                with ExitStack() as stack:
                    server = redis_with_aof(work / f"redis-{policy}-{round_no}", policy).start()
                    stack.callback(server.stop)
                    service = stack.enter_context(running_server(server_spec("service", server.url, model_dir),
                                                                 free_port(), work))
                    wrk = run_wrk(service.url, duration_s, concurrency, 1, work / "wrk.log")
                out.append(Throughput(policy, round_no, wrk.ok_rate, wrk.p99_ms))
                log.info("appendfsync %s round %d: %.0f clicks/s", policy, round_no, out[-1].clicks_per_s)
    return out
