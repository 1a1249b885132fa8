"""Overload (docs/reliability.md): Poisson load at `overload_factor` × the measured saturation rate, then back.

Phases, back to back on one service and one redis-server:
1. saturation: `wrk` (C, closed loop, `concurrency` connections, bench/service_wrk.py) posts clicks; the
   rate of 200s is the saturation rate S. wrk costs a fraction of the service's CPU per request, so S is
   the service's rate, not the generator's;
2. nominal: Poisson at `nominal_share` × S (bench/open_loop.py), the reference p99 of accepted clicks;
3. overload: Poisson at `overload_factor` × S;
4. recovery: Poisson at `nominal_share` × S again, right after.
A probe samples the service's RSS and `si_queue_depth` every 100 ms throughout, and each phase reads
the CPU seconds of the generator (this process), the service and redis-server, so the report can say
what an accepted click and a refused one cost the service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import psutil

from bench.click_load import LoadRecord
from bench.open_loop import OpenLoopPlan, draw_arrivals, run_fast, run_open_loop
from bench.redis_server import RedisServer, free_port
from bench.servers import running_server, server_spec
from bench.service_wrk import run_wrk
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
    service_env: tuple[tuple[str, str], ...] = ()  # SI_* overrides, e.g. (("SI_MAX_LOOP_LAG_MS", "0"),)
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


@dataclass
class OverloadResult:
    plan: OverloadPlan
    saturation: Saturation
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

    def service_cpu_ms(self) -> tuple[float, float]:
        """(c_accept, c_reject): the service's CPU ms per 200 and per 503.

        c_accept from the nominal phase (its few non-200s counted as accepted, an upper bound), c_reject
        from what the overload phase spent beyond its 200s at that price, over its 503s.
        """
        nominal, overload = self.phases["nominal"].statuses(), self.phases["overload"].statuses()
        answered = sum(n for s, n in nominal.items() if s > 0)
        c_accept = 1000 * self.cpu["nominal"].service_s / max(answered, 1)
        rest = 1000 * self.cpu["overload"].service_s - c_accept * overload.get(200, 0)
        return c_accept, rest / max(overload.get(503, 0), 1)


class _CpuMeter:
    def __init__(self, service_pid: int, redis_pid: int) -> None:
        self.procs = (psutil.Process(), psutil.Process(service_pid), psutil.Process(redis_pid))

    def read(self) -> tuple[float, ...]:
        return (time.monotonic(), *(sum(p.cpu_times()[:2]) for p in self.procs))

    @staticmethod
    def between(before: tuple[float, ...], after: tuple[float, ...]) -> Cpu:
        wall, gen, service, redis = (b - a for a, b in zip(before, after, strict=True))
        return Cpu(wall, gen, service, redis)


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


async def _phases(url: str, pid: int, meter: _CpuMeter, result: OverloadResult) -> None:
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
    marks: dict[str, tuple[float, ...]] = {}

    def begin(phase: str) -> None:
        marks[phase] = meter.read()
        if not sampler:  # t = 0 of the samples is the nominal phase's start
            sampler.append(asyncio.create_task(_sample(url, pid, time.monotonic(), stop, result.samples)))

    try:
        for phase in PHASES:
            log.info("%s: Poisson %.0f clicks/s for %.0f s", phase, loads[phase].rate, plan.phase_s)
            result.phases[phase] = await run_open_loop(url, loads[phase], arrivals[phase],
                                                       on_start=functools.partial(begin, phase))
            result.cpu[phase] = meter.between(marks[phase], meter.read())
    finally:
        stop.set()
        await asyncio.gather(*sampler)


def run_overload(plan: OverloadPlan) -> OverloadResult:
    """One bounded run; every process it starts is stopped before it returns."""
    with tempfile.TemporaryDirectory(prefix="si-overload-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        server = RedisServer(work / "redis").start()
        stack.callback(server.stop)
        spec = server_spec("service", server.url, plan.model_dir)
        spec = dataclasses.replace(spec, env={**spec.env, **dict(plan.service_env)})
        service = stack.enter_context(running_server(spec, free_port(), work))
        assert server.proc is not None
        meter = _CpuMeter(service.proc.pid, server.proc.pid)
        before = meter.read()
        wrk = run_wrk(service.url, plan.saturation_s, plan.concurrency, 2, work / "wrk.log")
        cpu = meter.between(before, meter.read())
        saturation = Saturation((wrk.requests - wrk.non_2xx) / wrk.seconds, wrk.requests, wrk.non_2xx, wrk.p99_ms,
                                dataclasses.replace(cpu, generator_s=wrk.wrk_cpu_s))
        log.info("saturation: %.0f clicks/s answered 200 (wrk, %d connections)", saturation.rate, plan.concurrency)
        result = OverloadResult(plan, saturation)
        time.sleep(1.0)  # let the write-behind and the batcher drain what wrk left
        run_fast(_phases(service.url, service.proc.pid, meter, result))
        result.tracebacks = service.log_path.read_text(errors="replace").count("Traceback")
    return result
