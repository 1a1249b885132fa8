"""Overload (docs/reliability.md): Poisson load at 2 × the measured saturation rate, then back to nominal.

Phases, back to back on one service and one redis-server:
1. saturation: closed loop (`concurrency` workers, each sends its next click when the last answered);
   the rate of 200s is the saturation rate S;
2. nominal: Poisson at `nominal_share` × S, the reference p99 of accepted clicks;
3. overload: Poisson at `overload_factor` × S;
4. recovery: Poisson at `nominal_share` × S again, right after.
A probe samples the service's RSS, /readyz and `si_queue_depth` every 100 ms throughout.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import psutil

from bench.click_load import LoadPlan, LoadRecord, run_closed_loop, run_load
from bench.redis_server import RedisServer, free_port
from bench.servers import running_server, server_spec
from model.artifacts import DEFAULT_MODEL_DIR

log = logging.getLogger(__name__)

PHASES = ("nominal", "overload", "recovery")


@dataclass(frozen=True)
class OverloadPlan:
    saturation_s: float = 10.0
    concurrency: int = 32
    phase_s: float = 15.0
    nominal_share: float = 0.5
    overload_factor: float = 2.0
    sessions: int = 1000
    max_in_flight: int = 1024  # the client's bound: past it, clicks are counted as not sent
    model_dir: Path = DEFAULT_MODEL_DIR


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the nominal phase started
    rss_mb: float
    queue_depth: float


@dataclass
class OverloadResult:
    plan: OverloadPlan
    saturation_rate: float
    phases: dict[str, LoadRecord] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # target Poisson rate of each phase
    samples: list[Sample] = field(default_factory=list)
    tracebacks: int = 0

    def p99_ms(self, phase: str, status: int) -> float:
        ms = self.phases[phase].latency_ms(status)
        return float(np.percentile(ms, 99)) if ms.size else float("nan")

    def offered_rate(self, phase: str) -> float:
        """Clicks the client actually sent per second (it may fall short of the target on a busy machine)."""
        sent = [c for c in self.phases[phase].clicks if c.status != -1]
        return len(sent) / self.plan.phase_s

    def max_sample(self, phase: str, what: str) -> float:
        start = PHASES.index(phase) * self.plan.phase_s
        values = [getattr(s, what) for s in self.samples if start <= s.t < start + self.plan.phase_s]
        return max(values) if values else float("nan")


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


async def _phases(url: str, pid: int, result: OverloadResult) -> None:
    plan = result.plan
    nominal = plan.nominal_share * result.saturation_rate
    result.rates = {"nominal": nominal, "overload": plan.overload_factor * result.saturation_rate,
                    "recovery": nominal}
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(url, pid, time.monotonic(), stop, result.samples))
    try:
        for seed, phase in enumerate(PHASES, start=1):
            load = LoadPlan(rate=result.rates[phase], duration_s=plan.phase_s, sessions=plan.sessions, seed=seed,
                            max_in_flight=plan.max_in_flight, session_prefix=phase)
            log.info("%s: Poisson %.0f clicks/s for %.0f s", phase, load.rate, plan.phase_s)
            result.phases[phase] = await run_load(url, load)
    finally:
        stop.set()
        await sampler


def run_overload(plan: OverloadPlan) -> OverloadResult:
    """One bounded run; every process it starts is stopped before it returns."""
    with tempfile.TemporaryDirectory(prefix="si-overload-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        server = RedisServer(work / "redis").start()
        stack.callback(server.stop)
        service = stack.enter_context(running_server(server_spec("service", server.url, plan.model_dir),
                                                     free_port(), work))
        saturation = asyncio.run(run_closed_loop(service.url, plan.concurrency, plan.saturation_s, plan.sessions))
        rate = saturation.latency_ms(200).size / plan.saturation_s
        log.info("saturation: %.0f clicks/s answered 200 (closed loop, %d workers)", rate, plan.concurrency)
        result = OverloadResult(plan, rate)
        asyncio.run(_phases(service.url, service.proc.pid, result))
        result.tracebacks = service.log_path.read_text(errors="replace").count("Traceback")
    return result
