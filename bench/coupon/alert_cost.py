"""What coupon alerts cost the click path: server CPU per click and Redis round trips per click, alerts on
against off, on the same clicks (a short focused measurement, not `bench service`).

Each session opens a cart, so with the committed model nearly every session raises an alert (one per five
clicks): far more than a 10 % budget raises, so the cost measured is an upper bound. CPU and round trips are
measured in separate windows, because MONITOR (the round-trip counter) costs Redis CPU.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.procs.redis_server import RedisServer, free_port
from bench.procs.round_trips import RoundTripCounter
from bench.procs.servers import ServerSpec, running_server, server_spec

log = logging.getLogger(__name__)

SESSION = ("home", "view_product", "add_cart", "view_cart", "view_product")


async def _drive(url: str, tag: str, sessions: int, concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def one(http: httpx.AsyncClient, sid: str) -> None:
        async with gate:
            for action in SESSION:
                (await http.post(f"/v1/sessions/{sid}/events", json={"action": action})).raise_for_status()

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=concurrency)) as http:
        await asyncio.gather(*(one(http, f"cost-{tag}-{i}") for i in range(sessions)))
    return sessions * len(SESSION)


def measure(model_dir: Path, work_dir: Path, sessions: int = 400, concurrency: int = 8,
            repeats: int = 2) -> list[dict[str, Any]]:
    """Rows of (alerts, repeat, clicks, cpu_ms_per_click, round_trips_per_click, alerts raised), on/off alternating."""
    rows = []
    server = RedisServer(work_dir / "redis").start()
    try:
        for repeat in range(repeats):
            for alerts in ("off", "on"):
                base = server_spec("service", server.url, model_dir)
                spec = ServerSpec(f"alerts-{alerts}", base.argv,
                                  {**base.env, "SI_ALERTS_ENABLED": "true" if alerts == "on" else "false",
                                   "SI_REQUEST_DEADLINE_MS": "5000"})
                client = redis.Redis.from_url(server.url)
                client.flushall()
                with running_server(spec, free_port(), work_dir) as service:
                    asyncio.run(_drive(service.url, f"warm-{alerts}{repeat}", 20, concurrency))
                    cpu0 = service.cpu_seconds()
                    clicks = asyncio.run(_drive(service.url, f"cpu-{alerts}{repeat}", sessions, concurrency))
                    cpu = service.cpu_seconds() - cpu0
                    with RoundTripCounter(client) as trips:
                        counted = asyncio.run(_drive(service.url, f"rt-{alerts}{repeat}", sessions // 4, concurrency))
                        by_command = trips.take()
                    raised = client.xlen("si:v1:{alerts}")
                client.close()
                rows.append({"alerts": alerts, "repeat": repeat, "clicks": clicks,
                             "cpu_ms_per_click": 1000 * cpu / clicks,
                             "round_trips_per_click": sum(by_command.values()) / counted,
                             "commands": dict(by_command), "alerts_raised": raised})
                log.info("%s", rows[-1])
    finally:
        server.stop()
    return rows
