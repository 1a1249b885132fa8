"""Overload (docs/reliability.md): Poisson load at `overload_factor` × the measured saturation rate, then back.

1. saturation: `wrk` (C, closed loop, `concurrency` connections, bench/load/wrk.py) posts clicks to a
   service whose admission refuses nothing; the rate of 200s is the saturation rate S and its CPU per
   click is c_accept. wrk costs a fraction of the service's CPU per request, so S is the service's rate,
   not the generator's;
2. nominal: Poisson at `nominal_share` × S (bench/load/open_loop.py) on the service with its admission as
   configured: the reference p99 of accepted clicks;
3. overload: Poisson at `overload_factor` × S;
4. recovery: Poisson at `nominal_share` × S again, right after;
5. shed cost: wrk against a service that admits one request at a time: its CPU per refusal, c_reject.
A probe samples the service's RSS and `si_queue_depth` every 100 ms through 2-4, and each phase reads
the CPU seconds of the generator (this process), the service and redis-server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import psutil

from bench.load.clicks import LoadRecord
from bench.load.open_loop import OpenLoopPlan, draw_arrivals, run_fast, run_open_loop
from bench.load.wrk import run_wrk
from bench.procs.cpu import CpuMeter, CpuReading, cpu_seconds
from bench.procs.redis_server import RedisServer, free_port
from bench.procs.servers import RunningServer, running_server, server_spec
from model.artifacts import DEFAULT_MODEL_DIR

log = logging.getLogger(__name__)

PHASES = ("nominal", "overload", "recovery")


@dataclass(frozen=True)
class OverloadPlan:
    saturation_s: float = 10.0
    concurrency: int = 32  # wrk's connections
    phase_s: float = 15.0
    nominal_share: float = 0.5
    overload_factor: float = 2.0
    sessions: int = 1000
    connections: int = 256  # the open-loop generator's keep-alive pool
    max_pending: int = 4096  # clicks waiting for a free connection; past it, not sent (status -1)
    shed_cost_s: float = 5.0  # wrk seconds against a service that refuses nearly everything; 0 skips
    service_env: tuple[tuple[str, str], ...] = ()  # SI_* overrides, e.g. (("SI_ADMISSION_TARGET_MS", "0"),)
    model_dir: Path = DEFAULT_MODEL_DIR


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the nominal phase started
    rss_mb: float
    queue_depth: float


@dataclass(frozen=True)
class Cpu:
    """CPU seconds spent during one phase (or the saturation run) by each process, and its wall seconds."""

    wall_s: float
    generator_s: float
    service_s: float
    redis_s: float


@dataclass(frozen=True)
class Saturation:
    rate: float  # 200s per second
    requests: int
    non_2xx: int
    p99_ms: float
    cpu: Cpu


@dataclass(frozen=True)
class ShedCost:
    """wrk against a service admitting one request at a time: the service's CPU per refusal, measured alone."""

    requests: int
    refused: int
    service_s: float  # user + system CPU seconds of the service over the run

    @property
    def us_per_request(self) -> float:
        return 1e6 * self.service_s / max(self.requests, 1)


@dataclass
class OverloadResult:
    plan: OverloadPlan
    saturation: Saturation
    shed_cost: ShedCost | None = None
    phases: dict[str, LoadRecord] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # target Poisson rate of each phase
    cpu: dict[str, Cpu] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    tracebacks: int = 0

    @property
    def saturation_rate(self) -> float:
        return self.saturation.rate

    def p99_ms(self, phase: str, status: int) -> float:
        ms = self.phases[phase].latency_ms(status)
        return float(np.percentile(ms, 99)) if ms.size else float("nan")

    def offered_rate(self, phase: str) -> float:
        """Clicks the generator actually sent per second (status -1: its pending bound was full)."""
        sent = [c for c in self.phases[phase].clicks if c.status != -1]
        return len(sent) / self.plan.phase_s

    def max_sample(self, phase: str, what: str) -> float:
        start = PHASES.index(phase) * self.plan.phase_s
        values = [getattr(s, what) for s in self.samples if start <= s.t < start + self.plan.phase_s]
        return max(values) if values else float("nan")

    def accept_cpu_us(self) -> float:
        """The service's CPU µs per click answered at saturation (wrk, nothing refused; full batches)."""
        return 1e6 * self.saturation.cpu.service_s / max(self.saturation.requests, 1)

    def phase_cpu_us(self, phase: str) -> float:
        """The service's CPU µs per click offered in `phase`, whatever its answer."""
        sent = sum(n for status, n in self.phases[phase].statuses().items() if status > 0)
        return 1e6 * self.cpu[phase].service_s / max(sent, 1)


def _meter(service: RunningServer, redis: RedisServer) -> CpuMeter:
    assert redis.proc is not None
    return CpuMeter(generator=None, service=service.proc.pid, redis=redis.proc.pid)


def _cpu(meter: CpuMeter, before: CpuReading) -> Cpu:
    wall, spent = meter.between(before, meter.read())
    return Cpu(wall, spent["generator"], spent["service"], spent["redis"])


async def _sample(url: str, pid: int, started: float, stop: asyncio.Event, out: list[Sample]) -> None:
    proc = psutil.Process(pid)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as client:
        while not stop.is_set():
            depth = float("nan")
            try:
                async with client.get(f"{url}/metrics") as answer:
                    for line in (await answer.text()).splitlines():
                        if line.startswith("si_queue_depth "):
                            depth = float(line.split()[-1])
            except (aiohttp.ClientError, TimeoutError):
                pass
            out.append(Sample(time.monotonic() - started, proc.memory_info().rss / 2**20, depth))
            await asyncio.sleep(0.1)


async def _phases(url: str, pid: int, meter: CpuMeter, result: OverloadResult) -> None:
    plan = result.plan
    nominal = plan.nominal_share * result.saturation_rate
    result.rates = {"nominal": nominal, "overload": plan.overload_factor * result.saturation_rate,
                    "recovery": nominal}
    host = url.removeprefix("http://")
    loads = {phase: OpenLoopPlan(rate=result.rates[phase], duration_s=plan.phase_s, sessions=plan.sessions,
                                 seed=seed, connections=plan.connections, max_pending=plan.max_pending,
                                 session_prefix=phase)
             for seed, phase in enumerate(PHASES, start=1)}
    arrivals = {phase: draw_arrivals(load, host) for phase, load in loads.items()}  # drawn before any load
    stop = asyncio.Event()
    sampler: list[asyncio.Task[None]] = []
    marks: dict[str, CpuReading] = {}

    def begin(phase: str) -> None:
        marks[phase] = meter.read()
        if not sampler:  # t = 0 of the samples is the nominal phase's start
            sampler.append(asyncio.create_task(_sample(url, pid, time.monotonic(), stop, result.samples)))

    try:
        for phase in PHASES:
            log.info("%s: Poisson %.0f clicks/s for %.0f s", phase, loads[phase].rate, plan.phase_s)
            result.phases[phase] = await run_open_loop(url, loads[phase], arrivals[phase],
                                                       on_start=functools.partial(begin, phase))
            result.cpu[phase] = _cpu(meter, marks[phase])
    finally:
        stop.set()
        await asyncio.gather(*sampler)


def run_overload(plan: OverloadPlan) -> OverloadResult:
    """One bounded run; every process it starts is stopped before it returns.

    Three services in turn on one redis-server: one with admission reduced to a bound wrk never reaches,
    for S and c_accept (a closed loop would otherwise be refused into measuring the refusals); the one
    under test, for the phases; one admitting a single request at a time, for c_reject.
    """
    with tempfile.TemporaryDirectory(prefix="si-overload-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        server = RedisServer(work / "redis").start()
        stack.callback(server.stop)
        assert server.proc is not None
        capacity = {"SI_ADMISSION_TARGET_MS": "0", "SI_MAX_IN_FLIGHT": str(4 * plan.concurrency)}
        with _service(plan, server, work, "service-capacity", capacity) as service:
            saturation = _saturation(plan, service, _meter(service, server), work)
        result = OverloadResult(plan, saturation)
        with _service(plan, server, work, "service", dict(plan.service_env)) as service:
            run_fast(_phases(service.url, service.proc.pid, _meter(service, server), result))
            result.tracebacks = service.log_path.read_text(errors="replace").count("Traceback")
        if plan.shed_cost_s > 0:
            refuse = {"SI_MAX_IN_FLIGHT": "1", "SI_ADMISSION_TARGET_MS": "0", "SI_MAX_QUEUE_DELAY_MS": "200"}
            with _service(plan, server, work, "service-shed", refuse) as service:
                result.shed_cost = _shed_cost(plan, service, work)
    return result


@contextmanager
def _service(plan: OverloadPlan, redis: RedisServer, work: Path, name: str,
             env: dict[str, str]) -> Iterator[RunningServer]:
    spec = server_spec("service", redis.url, plan.model_dir)
    with running_server(dataclasses.replace(spec, name=name, env={**spec.env, **env}), free_port(), work) as service:
        yield service


def _saturation(plan: OverloadPlan, service: RunningServer, meter: CpuMeter, work: Path) -> Saturation:
    before = meter.read()
    wrk = run_wrk(service.url, plan.saturation_s, plan.concurrency, 2, work / "wrk.log")
    cpu = dataclasses.replace(_cpu(meter, before), generator_s=wrk.wrk_cpu_s)
    saturation = Saturation((wrk.requests - wrk.non_2xx) / wrk.seconds, wrk.requests, wrk.non_2xx, wrk.p99_ms, cpu)
    log.info("saturation: %.0f clicks/s answered 200 (wrk, %d connections)", saturation.rate, plan.concurrency)
    return saturation


def _shed_cost(plan: OverloadPlan, service: RunningServer, work: Path) -> ShedCost:
    """c_reject, measured directly: one click in flight at a time (each held 200 ms by the batching delay),
    every other request refused, wrk's `concurrency` connections resending at once."""
    before = cpu_seconds(service.proc.pid)
    wrk = run_wrk(service.url, plan.shed_cost_s, plan.concurrency, 2, work / "wrk-shed.log")
    cost = ShedCost(wrk.requests, wrk.non_2xx, cpu_seconds(service.proc.pid) - before)
    log.info("shed cost: %.0f µs of service CPU per request, %d of %d refused", cost.us_per_request, cost.refused,
             cost.requests)
    return cost
