"""Proof of the coupon loop by simulation, through the real service and a real redis-server (no mocks).

Synthetic shoppers browse and cart through the HTTP API. The service raises alerts on its stream; the
documented coupon consumer (examples/coupon_consumer.py, a separate process) couponed the `treat` ones.
A shopper then decides: buy (an `order` click) with probability `base_rate`, plus `effect` when it holds a
coupon; else it leaves, and its session expires with the cart open. `session-intent uplift`'s analysis,
on what Redis recorded, must recover the injected effect within its CI (and cover 0 when the effect is 0).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.procs.redis_server import RedisServer, free_port
from bench.procs.servers import REPO_ROOT, ServerSpec, running_server, server_spec

log = logging.getLogger(__name__)

CONSUMER = REPO_ROOT / "examples" / "coupon_consumer.py"
BROWSE = ("home", "category", "view_product", "search", "view_product")


@dataclass(frozen=True)
class Shoppers:
    """The synthetic population and its behaviour."""

    n: int = 4000
    base_rate: float = 0.20  # chance to buy without a coupon, once the cart is open
    effect: float = 0.05  # added chance to buy with a coupon
    decide_after_s: float = 0.5  # the time a shopper lingers before deciding: the coupon engine's window
    concurrency: int = 48
    seed: int = 0


async def _shop(http: httpx.AsyncClient, coupons: redis.Redis, coupon_key: str, sid: str, rng: random.Random,
                p: Shoppers, gate: asyncio.Semaphore) -> bool:
    """One shopper: browse, cart, linger, then buy or leave. True when it held a coupon."""
    async with gate:
        for action in (*rng.sample(BROWSE, rng.randint(1, 4)), "add_cart", "view_cart"):
            response = await http.post(f"/v1/sessions/{sid}/events", json={"action": action})
            response.raise_for_status()
        await asyncio.sleep(p.decide_after_s)
        couponed = bool(await asyncio.to_thread(coupons.hexists, coupon_key, sid))
        if rng.random() < p.base_rate + (p.effect if couponed else 0.0):
            (await http.post(f"/v1/sessions/{sid}/events", json={"action": "order"})).raise_for_status()
        return couponed


async def _run_shoppers(url: str, redis_url: str, coupon_key: str, p: Shoppers, run_tag: str) -> int:
    rng = random.Random(p.seed)
    gate = asyncio.Semaphore(p.concurrency)
    coupons = redis.Redis.from_url(redis_url)
    limits = httpx.Limits(max_connections=p.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        held = await asyncio.gather(*(
            _shop(http, coupons, coupon_key, f"sim-{run_tag}-{i}", random.Random(rng.random()), p, gate)
            for i in range(p.n)
        ))
    coupons.close()
    return sum(held)


def simulate(p: Shoppers, model_dir: Path, work_dir: Path, hold_share: float = 0.5, ttl_s: int = 3) -> dict[str, Any]:
    """Run one simulated experiment; the alerts and outcomes as Redis recorded them, and run facts."""
    from service.store.alerts import read_outcomes
    from service.store.keys import KeyScheme

    work_dir.mkdir(parents=True, exist_ok=True)
    scheme = KeyScheme()
    coupon_key = f"{scheme.alerts}:coupons"
    server = RedisServer(work_dir / "redis").start()
    try:
        base = server_spec("service", server.url, model_dir)
        spec = ServerSpec(base.name, base.argv, {
            **base.env, "SI_TTL_S": str(ttl_s), "SI_HOLDOUT_SHARE": str(hold_share),
            "SI_HOLDOUT_SECRET": f"simulation-{p.seed}", "SI_SCORE_FLUSH_MS": "20",
            "SI_REQUEST_DEADLINE_MS": "5000",
        })
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        consumer = subprocess.Popen(
            [sys.executable, str(CONSUMER), "--redis-url", server.url, "--consumer", "sim", "--claim-idle-ms", "5000"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            with running_server(spec, free_port(), work_dir) as service:
                began = time.monotonic()
                couponed = asyncio.run(_run_shoppers(service.url, server.url, coupon_key, p, f"{p.seed}"))
                seconds = time.monotonic() - began
        finally:
            consumer.send_signal(signal.SIGTERM)
            consumer.wait(timeout=10)
        time.sleep(ttl_s + 1.5)  # every session that did not buy expires with its cart open

        async def read() -> list[dict[str, Any]]:
            from redis.asyncio import Redis

            client = Redis.from_url(server.url)
            try:
                return await read_outcomes(client, scheme.outcomes_pattern, lambda sid: scheme.session(sid).meta)
            finally:
                await client.aclose()

        rows = asyncio.run(read())
    finally:
        server.stop()
    log.info("%d shoppers in %.0f s: %d alerts, %d couponed", p.n, seconds, len(rows), couponed)
    return {"rows": rows, "couponed": couponed, "seconds": seconds, "hold_share": hold_share}
