"""What coupon alerts cost the click path: server CPU per click and Redis round trips per click, alerts on
against off, on the same clicks (a short focused measurement, not `bench service`).

The clicks are the coupon simulation's shoppers' carted visits (bench/coupon/shoppers.py): each click carries
its user, item and category ids, as the default model (context session+history) needs, so its policy fires
as it would on carting sessions. Browse-only sessions never alert, so the alert share here is already above
a shop's. `every_cart` makes it an upper bound: the model's card gets a policy every open cart reaches, so each
visit raises its alert. The table reports the alerts raised, so a run that raised none shows it. CPU and round
trips are measured in separate windows, because MONITOR (the round-trip counter) costs Redis CPU.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.coupon.shoppers import Visit, build_shoppers, trained_actions
from bench.procs.redis_server import RedisServer, free_port
from bench.procs.round_trips import RoundTripCounter
from bench.procs.servers import ServerSpec, running_server, server_spec

log = logging.getLogger(__name__)


def carted_visits(model_dir: Path, count: int, seed: int = 0) -> list[Visit]:
    """`count` carted visits of the simulation's shoppers, with ids, in the generator's order."""
    from model.card import ModelCard

    actions = trained_actions(ModelCard.load(model_dir).slot_coverage)
    visits: list[Visit] = []
    n_sessions = 12 * count  # about one generator session in eleven carts, and some lose every click to the vocabulary
    while len(visits) < count:
        shoppers = build_shoppers(n_sessions, seed, actions, browse_share=0.0, max_visits=1_000_000)
        visits = sorted((v for sh in shoppers for v in sh.visits), key=lambda v: v.session_id)
        n_sessions *= 2
    return visits[:count]


def policy_every_cart(model_dir: Path, work_dir: Path) -> Path:
    """A copy of the model whose card's policy every open cart reaches (threshold 0): the upper bound."""
    from model.card import ModelCard
    from model.policy import AlertPolicy

    copy = work_dir / "model-every-cart"
    shutil.copytree(model_dir, copy, dirs_exist_ok=True)
    policy = AlertPolicy(kind="budget", target=1.0, threshold=0.0, alert_share=1.0, precision=None, recall=None)
    replace(ModelCard.load(copy), policy=policy).save(copy)
    return copy


async def _drive(url: str, tag: str, visits: list[Visit], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def one(http: httpx.AsyncClient, visit: Visit) -> None:
        async with gate:
            for click in visit.clicks:
                path = f"/v1/sessions/{tag}-{visit.session_id}/events"
                (await http.post(path, json=click)).raise_for_status()

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=concurrency)) as http:
        await asyncio.gather(*(one(http, v) for v in visits))
    return sum(len(v.clicks) for v in visits)


def measure(model_dir: Path, work_dir: Path, sessions: int = 400, concurrency: int = 8, repeats: int = 2,
            every_cart: bool = False) -> list[dict[str, Any]]:
    """Rows of (alerts, repeat, clicks, cpu_ms_per_click, round_trips_per_click, alerts raised), on/off alternating."""
    from service.store.keys import KeyScheme

    warm, counted_sessions = 20, max(1, sessions // 4)
    visits = carted_visits(model_dir, warm + sessions + counted_sessions)
    windows = {"warm": visits[:warm], "cpu": visits[warm:warm + sessions], "rt": visits[warm + sessions:]}
    if every_cart:
        model_dir = policy_every_cart(model_dir, work_dir)
    stream = KeyScheme().alerts
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
                    asyncio.run(_drive(service.url, f"warm{repeat}", windows["warm"], concurrency))
                    cpu0 = service.cpu_seconds()
                    clicks = asyncio.run(_drive(service.url, f"cpu{repeat}", windows["cpu"], concurrency))
                    cpu = service.cpu_seconds() - cpu0
                    with RoundTripCounter(client) as trips:
                        counted = asyncio.run(_drive(service.url, f"rt{repeat}", windows["rt"], concurrency))
                        by_command = trips.take()
                # Counted once the service has stopped: its shutdown flushes the write-behind, which writes the
                # last clicks' alerts up to SI_SCORE_FLUSH_MS after their answers.
                raised = client.xlen(stream)
                client.close()
                rows.append({"alerts": alerts, "repeat": repeat, "sessions": len(visits), "clicks": clicks,
                             "cpu_ms_per_click": 1000 * cpu / clicks,
                             "round_trips_per_click": sum(by_command.values()) / counted,
                             "commands": dict(by_command), "alerts_raised": raised})
                log.info("%s", rows[-1])
    finally:
        server.stop()
    return rows
