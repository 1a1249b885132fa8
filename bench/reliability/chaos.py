"""Redis crash under load (docs/reliability.md): SIGKILL redis-server mid-run, restart it on its data dir.

One run: a real redis-server with the AOF on (`appendfsync` always or everysec), the real service
(`session-intent serve` in a subprocess) and the Poisson click load of bench/load/clicks.py. At
`kill_at_s` redis-server gets SIGKILL; at `restart_at_s` it starts again on the same directory and
port, replaying its AOF. A probe samples /readyz and the service's RSS every 100 ms throughout.
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

import httpx
import numpy as np
import psutil
import redis

from bench.load.clicks import LoadPlan, LoadRecord, run_closed_loop, run_load
from bench.procs.redis_server import RedisServer, free_port
from bench.procs.servers import running_server, server_spec
from bench.reliability.ack_audit import AckAudit, audit_acknowledged
from model.artifacts import DEFAULT_MODEL_DIR

log = logging.getLogger(__name__)

PROBE_EVERY_S = 0.1
FSYNC_POLICIES = ("always", "everysec")


@dataclass(frozen=True)
class ChaosPlan:
    appendfsync: str = "always"
    rate: float = 300.0
    sessions: int = 500
    duration_s: float = 25.0
    kill_at_s: float = 10.0
    restart_at_s: float = 15.0
    model_dir: Path = DEFAULT_MODEL_DIR
    seed: int = 0


@dataclass(frozen=True)
class Probe:
    t: float  # seconds since the load started
    ready_status: int  # /readyz status, 0 when it did not answer
    rss_mb: float


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


async def probe_service(url: str, pid: int, started: float, stop: asyncio.Event, probes: list[Probe]) -> None:
    """Every PROBE_EVERY_S until `stop`: /readyz status and the RSS of process `pid`, appended to `probes`."""
    proc = psutil.Process(pid)
    async with httpx.AsyncClient(timeout=1.0) as client:
        while not stop.is_set():
            try:
                status = (await client.get(f"{url}/readyz")).status_code
            except httpx.HTTPError:
                status = 0
            probes.append(Probe(time.monotonic() - started, status, proc.memory_info().rss / 2**20))
            await asyncio.sleep(PROBE_EVERY_S)


async def _faults(server: RedisServer, plan: ChaosPlan, started: list[float], marks: dict[str, float]) -> None:
    await asyncio.sleep(plan.kill_at_s)
    sigkill(server)
    marks["killed"] = time.monotonic() - started[0]
    log.info("redis-server SIGKILLed at %.2f s", marks["killed"])
    await asyncio.sleep(max(plan.restart_at_s - marks["killed"], 0))
    marks["restarted"] = time.monotonic() - started[0]  # spawned now; the AOF replay counts against recovery
    await asyncio.to_thread(server.start)  # same port and dir: replays the AOF
    log.info("redis-server restarted at %.2f s, answering after %.2f s", marks["restarted"],
             time.monotonic() - started[0] - marks["restarted"])


async def _drive(url: str, pid: int, server: RedisServer, plan: ChaosPlan) -> tuple[LoadRecord, list[Probe],
                                                                                      dict[str, float]]:
    load_plan = LoadPlan(rate=plan.rate, duration_s=plan.duration_s, sessions=plan.sessions, seed=plan.seed)
    started = [time.monotonic()]
    probes: list[Probe] = []
    marks: dict[str, float] = {}
    stop = asyncio.Event()
    probe = asyncio.create_task(probe_service(url, pid, started[0], stop, probes))
    faults = asyncio.create_task(_faults(server, plan, started, marks))
    try:
        record = await run_load(url, load_plan)
        await faults
    finally:
        stop.set()
        await probe
    return record, probes, marks


def run_chaos(plan: ChaosPlan) -> ChaosResult:
    """One bounded run; every process it starts is stopped before it returns."""
    if not 0 < plan.kill_at_s < plan.restart_at_s < plan.duration_s:
        raise ValueError("need 0 < kill_at_s < restart_at_s < duration_s")
    with tempfile.TemporaryDirectory(prefix="si-chaos-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        server = redis_with_aof(work / "redis", plan.appendfsync).start()
        stack.callback(server.stop)
        service = stack.enter_context(running_server(server_spec("service", server.url, plan.model_dir),
                                                     free_port(), work))
        record, probes, marks = asyncio.run(_drive(service.url, service.proc.pid, server, plan))
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
    """Closed-loop saturation of the service on an AOF Redis, `always` and `everysec` interleaved round by round."""
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
                    record = asyncio.run(run_closed_loop(service.url, concurrency, duration_s, sessions=500,
                                                         seed=round_no))
                ok = record.latency_ms(200)
                out.append(Throughput(policy, round_no, ok.size / duration_s,
                                      float(np.percentile(ok, 99)) if ok.size else float("nan")))
                log.info("appendfsync %s round %d: %.0f clicks/s", policy, round_no, out[-1].clicks_per_s)
    return out
