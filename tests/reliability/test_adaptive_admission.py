"""Adaptive admission (service/admission.py `Admission`): the in-flight limit shrinks while admitted requests
answer later than `SI_ADMISSION_TARGET_MS` and grows back while they answer within it; the event loop's
lag counts in a request's latency. No assert depends on how fast this machine is: every click below
waits for a batching delay hundreds of times the target, and the loop is blocked by a known sleep."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.admission import Admission, LoopLag
from service.app import create_app
from tests.redis_procs import RedisServer
from tests.service_support import service_settings
from tests.uvicorn_proc import UvicornThread

MAX_IN_FLIGHT = 16
BURST = 8


@pytest.fixture(scope="module")
def server(model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    # Every click waits the 300 ms batching delay (a burst never fills a batch of 64): 300 × the 1 ms target.
    settings = service_settings(
        model_dir,
        redis_server.url,
        max_in_flight=MAX_IN_FLIGHT,
        admission_target_ms=1,
        max_queue_delay_ms=300,
        max_batch_size=64,
        request_deadline_ms=5_000,
    )
    with UvicornThread(create_app(settings)) as running:
        yield running


async def _burst(url: str, tag: str, size: int) -> Counter[int]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        answers = await asyncio.gather(
            *(
                client.post(f"/v1/sessions/aa-{tag}-{i}/events", json={"action": "home", "event_id": f"{tag}-{i}"})
                for i in range(size)
            )
        )
    for answer in answers:
        if answer.status_code == 503:
            assert answer.headers["Retry-After"] == "1" and answer.json() == {
                "error": "overloaded; retry later", "request_id": answer.headers["X-Request-ID"]}
    return Counter(answer.status_code for answer in answers)


def test_late_answers_shrink_the_limit_to_its_floor_and_the_excess_is_refused(server: UvicornThread) -> None:
    admission: Admission = server.app.state.admission
    assert admission.limit == MAX_IN_FLIGHT
    # Each burst is answered together, 300 ms after it came: at least one cut of × 0.9 per burst.
    for round_ in range(60):
        statuses = asyncio.run(_burst(server.url, f"r{round_}", BURST))
        assert set(statuses) <= {200, 503}, statuses
        if admission.limit == admission.floor:
            break
    assert admission.limit == admission.floor == MAX_IN_FLIGHT / Admission.FLOOR_SHARE
    statuses = asyncio.run(_burst(server.url, "past-floor", 24))
    # At most the floor (4) answered 200, not the fixed bound (16).
    assert set(statuses) == {200, 503} and statuses[200] <= admission.floor, statuses


def test_the_limit_moves_by_aimd_once_per_target_window() -> None:
    admission = Admission(max_in_flight=64, target_s=0.025)
    for _ in range(10):
        assert admission.admit() == 0.0  # no loop running: no lag measured yet
    admission.done(0.030, now=10.0)
    assert admission.limit == pytest.approx(64 * 0.9)
    admission.done(0.030, now=10.010)  # the same window: one signal, not two
    assert admission.limit == pytest.approx(64 * 0.9)
    admission.done(0.030, now=10.030)
    assert admission.limit == pytest.approx(64 * 0.9 * 0.9)
    before = admission.limit
    admission.done(0.010, now=10.040)
    assert admission.limit == pytest.approx(before + 1 / before)
    for i in range(6):
        admission.done(0.010, now=11.0 + i)
    assert admission.in_flight == 0
    for i in range(10_000):
        admission.in_flight += 1
        admission.done(0.010, now=12.0 + i)
    assert admission.limit == 64  # capped at max_in_flight
    while admission.admit() is not None:
        pass
    assert admission.in_flight == 64


class _RecordedLag(LoopLag):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    def _tick(self) -> None:
        super()._tick()
        self.seen.append(self.lag_s)


def test_a_blocked_loop_shows_as_lag_at_least_as_long_as_the_block() -> None:
    async def main() -> list[float]:
        lag = _RecordedLag()
        lag.start(asyncio.get_running_loop())
        await asyncio.sleep(2 * LoopLag.TICK_S)
        time.sleep(0.05)  # the loop can run no tick during this
        await asyncio.sleep(2 * LoopLag.TICK_S)
        lag.stop()
        return lag.seen

    # The tick due next when the block began was at most TICK_S away: it ran at least 45 ms late.
    assert max(asyncio.run(main())) >= 0.05 - LoopLag.TICK_S
