"""Open-loop Poisson click load that records every request's outcome, for the reliability benchmarks.

Arrivals follow a Poisson process at `rate` clicks/s spread over `sessions` session ids; each click has a
unique event_id and is sent once (no retry), so an acknowledged click (200) is exactly one event the
service promised to keep. Open loop: a slow server does not slow the arrivals; past `max_in_flight`
outstanding requests a click is recorded as not sent (status -1) instead of queueing in the client.
aiohttp, not httpx: on a shared 2-core machine the client's CPU per request decides how much load it
can offer, and aiohttp spends a fraction of httpx's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from model.features import ACTIONS

log = logging.getLogger(__name__)

NOT_SENT = -1  # the client's in-flight bound was reached
TRANSPORT_ERROR = 0  # no HTTP answer (connection refused or reset, client timeout)


@dataclass(frozen=True)
class Click:
    """One request: when it left (seconds since the load started), how it ended."""

    t: float
    latency_s: float
    status: int
    retry_after: str | None
    session: str
    event_id: str
    event_index: int | None


@dataclass(frozen=True)
class LoadPlan:
    rate: float  # clicks/s, mean of the Poisson process
    duration_s: float
    sessions: int
    seed: int = 0
    max_in_flight: int = 512
    timeout_s: float = 5.0
    session_prefix: str = "chaos"


@dataclass
class LoadRecord:
    clicks: list[Click] = field(default_factory=list)
    started: float = 0.0  # time.monotonic() when the first arrival was due

    def acknowledged(self) -> list[Click]:
        return [c for c in self.clicks if c.status == 200]

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for click in self.clicks:
            counts[click.status] = counts.get(click.status, 0) + 1
        return dict(sorted(counts.items()))

    def latency_ms(self, status: int, since: float = 0.0, until: float = float("inf")) -> np.ndarray:
        """(k,) latencies in ms of the clicks with `status` sent in [since, until)."""
        return np.array([c.latency_s * 1000 for c in self.clicks if c.status == status and since <= c.t < until])


def session_id(plan: LoadPlan, index: int) -> str:
    return f"{plan.session_prefix}-{plan.seed}-{index}"


async def run_load(base_url: str, plan: LoadPlan, headers: dict[str, str] | None = None,
                   on_second: Callable[[float], None] | None = None) -> LoadRecord:
    """Send the Poisson click stream for `plan.duration_s`, then wait for the stragglers (bounded by the timeout)."""
    rng = random.Random(plan.seed)
    record = LoadRecord()
    counters = [0] * plan.sessions
    in_flight: set[asyncio.Task[None]] = set()
    async with _session(base_url, plan.max_in_flight, plan.timeout_s, headers) as client:
        record.started = start = time.monotonic()
        due = 0.0
        next_tick = 1.0
        while due < plan.duration_s:
            due += rng.expovariate(plan.rate)
            delay = start + due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if on_second is not None and due >= next_tick:
                on_second(due)
                next_tick += 1.0
            index = rng.randrange(plan.sessions)
            session = session_id(plan, index)
            event_id = f"{session}-{counters[index]}"
            counters[index] += 1
            body = {"event_id": event_id, "action": rng.choice(ACTIONS)}
            if len(in_flight) >= plan.max_in_flight:
                record.clicks.append(Click(due, 0.0, NOT_SENT, None, session, event_id, None))
                continue
            task = asyncio.create_task(_click(client, record, start, session, event_id, body))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=plan.timeout_s + 1)
    return record


def _session(base_url: str, connections: int, timeout_s: float,
             headers: dict[str, str] | None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=base_url, headers=headers or {},
                                 connector=aiohttp.TCPConnector(limit=connections),
                                 timeout=aiohttp.ClientTimeout(total=timeout_s))


async def _click(client: aiohttp.ClientSession, record: LoadRecord, start: float, session: str, event_id: str,
                 body: Mapping[str, object]) -> None:
    sent = time.monotonic()
    try:
        async with client.post(f"/v1/sessions/{session}/events", json=body) as answer:
            status = answer.status
            index = (await answer.json()).get("event_index") if status == 200 else None
            retry_after = answer.headers.get("Retry-After")
            await answer.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.debug("click %s: %r", event_id, exc)
        record.clicks.append(Click(sent - start, time.monotonic() - sent, TRANSPORT_ERROR, None, session, event_id,
                                   None))
        return
    record.clicks.append(Click(sent - start, time.monotonic() - sent, status, retry_after, session, event_id, index))


async def run_closed_loop(base_url: str, concurrency: int, duration_s: float, sessions: int, seed: int = 0,
                          headers: dict[str, str] | None = None) -> LoadRecord:
    """`concurrency` workers each sending their next click as soon as the last one answered: the saturation rate."""
    plan = LoadPlan(rate=1.0, duration_s=duration_s, sessions=sessions, seed=seed, session_prefix="sat")
    record = LoadRecord()
    async with _session(base_url, concurrency, plan.timeout_s, headers) as client:
        record.started = start = time.monotonic()

        async def worker(worker_id: int) -> None:
            rng = random.Random(seed * 1000 + worker_id)
            n = 0
            while time.monotonic() - start < duration_s:
                session = session_id(plan, rng.randrange(sessions))
                event_id = f"{session}-w{worker_id}-{n}"
                n += 1
                await _click(client, record, start, session, event_id, {"event_id": event_id,
                                                                        "action": rng.choice(ACTIONS)})

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return record
