"""Proof of the coupon loop by simulation, through the real service and a real redis-server (no mocks).

Synthetic shoppers (bench/coupon/shoppers.py: the synthetic generator's returning shoppers and catalogue) play
their visits through the HTTP API, one visit after another per shopper, so their history builds; every click
carries its user, item and category ids, as the default model (context session+history) needs. The service
raises alerts on its stream; the documented coupon consumer (examples/coupon_consumer.py, a separate process)
coupons the `treat` ones. A visit that carted then lingers and decides: buy (an `order` of the carted item)
with probability `base_rate`, plus `effect` when it holds a coupon; else it leaves, and its session expires
with the cart open. `session-intent uplift`'s analysis, on what Redis recorded, must recover the injected
effect within its CI (and cover 0 when the effect is 0).
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

from bench.coupon.shoppers import Shopper, build_shoppers, population_facts, trained_actions
from bench.procs.redis_server import RedisServer, free_port
from bench.procs.servers import REPO_ROOT, ServerSpec, running_server, server_spec

log = logging.getLogger(__name__)

CONSUMER = REPO_ROOT / "examples" / "coupon_consumer.py"
CLICK_TRIES = 3


@dataclass(frozen=True)
class Shoppers:
    """The synthetic population and its behaviour."""

    n: int = 4000  # shoppers: the generator draws `n × sessions_per_shopper` sessions among about n shoppers
    sessions_per_shopper: float = 3.0  # the generator's mean (model/data/synth.py SESSIONS_PER_SHOPPER)
    browse_share: float = 1.0  # share of the browse-only visits played (they only feed history)
    base_rate: float = 0.20  # chance to buy without a coupon, once the cart is open
    effect: float = 0.05  # added chance to buy with a coupon
    decide_after_s: float = 0.5  # the time a shopper lingers before deciding: the coupon engine's window
    concurrency: int = 48  # shoppers playing at once
    seed: int = 0


@dataclass
class Tally:
    carted: int = 0
    couponed: int = 0
    orders: int = 0


async def _click(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    """POST one click; a dropped connection is retried with the same event_id, which the service appends once."""
    for attempt in range(CLICK_TRIES):
        try:
            (await http.post(path, json=body)).raise_for_status()
            return
        except httpx.TransportError:
            if attempt == CLICK_TRIES - 1:
                raise
            log.warning("click %s %s: connection dropped, retrying", path, body["event_id"])
            await asyncio.sleep(0.2 * (attempt + 1))


async def _play(http: httpx.AsyncClient, coupons: Any, coupon_key: str, shopper: Shopper, rng: random.Random,
                p: Shoppers, tally: Tally) -> None:
    """One shopper's visits in time order: each visit's clicks, then, when it carted, linger and decide."""
    for visit in shopper.visits:
        path = f"/v1/sessions/{visit.session_id}/events"
        for i, click in enumerate(visit.clicks):
            await _click(http, path, {**click, "event_id": f"{visit.session_id}-{i}"})
        if visit.order is None:
            continue
        tally.carted += 1
        await asyncio.sleep(p.decide_after_s)
        couponed = bool(await coupons.hexists(coupon_key, visit.session_id))
        tally.couponed += couponed
        if rng.random() < p.base_rate + (p.effect if couponed else 0.0):
            await _click(http, path, {**visit.order, "event_id": f"{visit.session_id}-order"})
            tally.orders += 1


async def _run_shoppers(url: str, redis_url: str, coupon_key: str, shoppers: list[Shopper], p: Shoppers) -> Tally:
    """`p.concurrency` workers, each playing whole shoppers from a queue (the most visits first)."""
    from redis.asyncio import Redis

    queue: asyncio.Queue[Shopper] = asyncio.Queue()
    for shopper in shoppers:
        queue.put_nowait(shopper)
    rng = random.Random(p.seed)
    # One stream of decisions per shopper, drawn up front: the runs of one seed decide alike (common random numbers).
    decisions = {sh.user_id: random.Random(rng.random()) for sh in shoppers}
    tally = Tally()
    coupons = Redis.from_url(redis_url)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            shopper = queue.get_nowait()
            await _play(http, coupons, coupon_key, shopper, decisions[shopper.user_id], p, tally)

    try:
        limits = httpx.Limits(max_connections=p.concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            await asyncio.gather(*(worker(http) for _ in range(p.concurrency)))
    finally:
        await coupons.aclose()
    return tally


def simulate(p: Shoppers, model_dir: Path, work_dir: Path, hold_share: float = 0.5, ttl_s: int = 3) -> dict[str, Any]:
    """Run one simulated experiment; the alerts and outcomes as Redis recorded them, and run facts."""
    from model.card import ModelCard
    from service.store.alerts import read_outcomes
    from service.store.keys import KeyScheme

    card = ModelCard.load(model_dir)
    shoppers = build_shoppers(round(p.n * p.sessions_per_shopper), p.seed, trained_actions(card.slot_coverage),
                              browse_share=p.browse_share)
    facts = population_facts(shoppers)
    log.info("population: %s", facts)
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
                try:
                    tally = asyncio.run(_run_shoppers(service.url, server.url, coupon_key, shoppers, p))
                except Exception:
                    log.error("the service's log ends:\n%s", service.log_path.read_text()[-3000:])
                    raise
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
    log.info("%d clicks in %.0f s (%.0f/s): %d alerts, %d carted visits, %d couponed, %d orders", facts["clicks"],
             seconds, facts["clicks"] / seconds, len(rows), tally.carted, tally.couponed, tally.orders)
    return {"rows": rows, "couponed": tally.couponed, "orders": tally.orders, "seconds": seconds,
            "hold_share": hold_share, **facts}
