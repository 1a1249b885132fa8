"""A fault under load, watched: Poisson clicks from the open-loop generator, a fault on its own schedule,
and a probe of /readyz and the service's RSS throughout. Chaos (Redis killed) and failover (a cluster
master killed) differ only in the fault."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import psutil

from bench.load.clicks import LoadRecord
from bench.load.open_loop import OpenLoopPlan, run_open_loop

PROBE_EVERY_S = 0.1


@dataclass(frozen=True)
class Probe:
    t: float  # seconds since the load started
    ready_status: int  # /readyz status, 0 when it did not answer
    rss_mb: float


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


async def drive_under_fault(url: str, pid: int, load: OpenLoopPlan,
                            fault: Callable[[float], Awaitable[None]]) -> tuple[LoadRecord, list[Probe]]:
    """Run `load` against `url`; `fault(started)` and the probe start with the first arrival's clock."""
    probes: list[Probe] = []
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def begin() -> None:
        started = time.monotonic()
        tasks.append(asyncio.create_task(probe_service(url, pid, started, stop, probes)))
        tasks.append(asyncio.create_task(_run(fault(started))))

    try:
        record = await run_open_loop(url, load, on_start=begin)
        await tasks[1]
    finally:
        stop.set()
        await asyncio.gather(*tasks[:1])
    return record, probes


async def _run(step: Awaitable[None]) -> None:
    await step


def fault_load(rate: float, sessions: int, duration_s: float, session_prefix: str, seed: int = 0,
               ids: bool = False) -> OpenLoopPlan:
    """The load of a fault run: up to 512 clicks in flight, a click past that not sent rather than queued, and
    the pool kept whole, so a fault that slows the answers meets every connection. With `ids`, every click writes
    the context state and its shopper's history too."""
    return OpenLoopPlan(rate=rate, duration_s=duration_s, sessions=sessions, seed=seed, connections=512,
                        max_pending=0, session_prefix=session_prefix, keep_pool=True, ids=ids)
