"""Admission (docs/architecture.md §7): past `max_in_flight` API requests in progress, a request is refused
at once with 503 + Retry-After, before its body is read; probes and /metrics still answer, and service
resumes as soon as the burst has drained."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.app import create_app
from service.store.keys import KeyScheme
from tests.redis_procs import RedisServer
from tests.service_support import metric_sample, service_settings
from tests.uvicorn_proc import UvicornThread

MAX_IN_FLIGHT = 4
BURST = 24


@pytest.fixture(scope="module")
def server(model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    # A long batching delay holds every admitted click in flight for ~300 ms, so a burst overlaps for sure.
    settings = service_settings(model_dir, redis_server.url, max_in_flight=MAX_IN_FLIGHT, max_queue_delay_ms=300,
                                max_batch_size=64, request_deadline_ms=5_000)
    with UvicornThread(create_app(settings)) as running:
        yield running


async def _burst(url: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        clicks = [client.post(f"/v1/sessions/adm-{i}/events", json={"action": "home", "event_id": f"e-{i}"})
                  for i in range(BURST)]
        probes = [client.get("/healthz"), client.get("/metrics")]
        return list(await asyncio.gather(*clicks, *probes))


def test_a_burst_past_the_bound_is_shed_with_retry_after_and_nothing_is_written(
    server: UvicornThread, redis_url: str
) -> None:
    answers = asyncio.run(_burst(server.url))
    clicks, probes = answers[:BURST], answers[BURST:]
    statuses = Counter(answer.status_code for answer in clicks)
    assert set(statuses) == {200, 503}, statuses
    assert statuses[200] <= MAX_IN_FLIGHT, statuses  # one batch window: only the admitted ones finish
    for answer in clicks:
        if answer.status_code == 503:
            assert answer.headers["Retry-After"] == "1" and answer.json()["error"] == "overloaded; retry later"
    assert all(probe.status_code == 200 for probe in probes)  # probes and scrapes are never shed
    client = redis.Redis.from_url(redis_url)
    shed = [i for i, answer in enumerate(clicks) if answer.status_code == 503]
    keys = KeyScheme()
    assert not any(client.exists(keys.session(f"adm-{i}").window) for i in shed), "a refused click must write nothing"
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post("/v1/sessions/adm-after/events", json={"action": "home"}).status_code == 200
        text = http.get("/metrics").text
        assert metric_sample(text, 'si_errors_total{cause="overload"}') >= statuses[503]
