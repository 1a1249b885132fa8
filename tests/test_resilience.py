"""Failure paths (docs/architecture.md §7): Redis going away and coming back, overload, deadlines, a wrong model, a bug.

Every error body is JSON from the one boundary and never carries a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from typer.testing import CliRunner

from service.app import create_app
from service.store.keys import KeyScheme
from tests.redis_procs import RedisServer
from tests.service_support import copy_with_card, service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread, serve_cli_app

LEAKS = ("Traceback", "File \"", "redis.exceptions", "WRONGTYPE", ".py")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def server(model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    settings = service_settings(model_dir, redis_server.url, request_deadline_ms=10_000, score_flush_ms=1)
    with UvicornThread(create_app(settings)) as running:
        yield running


@pytest.fixture()
def http(server: UvicornThread, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def assert_clean_error(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert not any(leak in answer.text for leak in LEAKS), answer.text
    body: dict = answer.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


def test_redis_down_is_a_503_and_not_ready_then_recovers_without_a_restart(
    http: httpx.Client, redis_server: RedisServer
) -> None:
    assert http.post("/v1/sessions/r-1/events", json={"action": "home"}).status_code == 200
    redis_server.stop()
    try:
        for method, path in (("POST", "/v1/sessions/r-1/events"), ("GET", "/v1/sessions/r-1/risk"),
                             ("GET", "/v1/at-risk"), ("GET", "/v1/sessions/r-1/explain"),
                             ("DELETE", "/v1/sessions/r-1")):
            answer = http.request(method, path, json={"action": "home"} if method == "POST" else None)
            assert_clean_error(answer, 503)
            assert answer.headers["Retry-After"] == "1"
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["redis"] is False and ready.json()["warmed"] is True
        assert http.get("/healthz").status_code == 200  # alive: a restart would not help
    finally:
        redis_server.start()
    deadline = time.monotonic() + 5
    while http.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "readiness did not come back with Redis"
        time.sleep(0.05)
    answer = http.post("/v1/sessions/r-1/events", json={"action": "home"})
    assert answer.status_code == 200 and answer.json()["event_index"] == 0  # the restarted Redis kept nothing
    assert 'si_errors_total{cause="redis"}' in http.get("/metrics").text


def test_starting_before_redis_serves_503_until_it_answers(model_dir: Path, tmp_path: Path) -> None:
    """Started before its Redis (as pods often are), the service is up but not ready, then ready without a restart."""
    late = RedisServer(tmp_path / "late-redis")
    settings = service_settings(model_dir, late.url, request_deadline_ms=10_000)
    with UvicornThread(create_app(settings)) as running, httpx.Client(base_url=running.url) as http:
        assert http.get("/readyz").json()["redis"] is False
        assert_clean_error(http.post("/v1/sessions/early-1/events", json={"action": "home"}), 503)
        late.start()
        try:
            assert http.get("/readyz").status_code == 200
            assert http.post("/v1/sessions/early-1/events", json={"action": "home"}).status_code == 200
        finally:
            late.stop()


def test_readiness_waits_for_the_warmup_batch(http: httpx.Client, server: UvicornThread) -> None:
    state = server.app.state.service
    state.warmed = False
    try:
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {**ready.json(), "redis": True, "warmed": False}
    finally:
        state.warmed = True
    assert http.get("/readyz").status_code == 200


def test_an_unexpected_error_is_a_500_without_details(http: httpx.Client, redis_url: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    corrupt = KeyScheme().session("broken-1").window
    redis.Redis.from_url(redis_url).set(corrupt, "not a list")  # not a list: the script fails
    with caplog.at_level(logging.ERROR, logger="service.boundary"):
        answer = http.post("/v1/sessions/broken-1/events", json={"action": "home"})
    assert assert_clean_error(answer, 500) == {"error": "internal error", "request_id": answer.headers["X-Request-ID"]}
    assert any(record.exc_info for record in caplog.records)  # the traceback went to the log instead
    assert 'si_errors_total{cause="internal"} 1.0' in http.get("/metrics").text


async def test_overload_sheds_with_503_and_a_retry_gets_the_scores(
    model_dir: Path, redis_server: RedisServer, redis_url: str
) -> None:
    """Queue bound 1: concurrent clicks beyond it are shed at once; their event_id retries append nothing."""
    settings = service_settings(model_dir, redis_url, max_queue_size=1, max_queue_delay_ms=300,
                                request_deadline_ms=10_000)
    with UvicornThread(create_app(settings)) as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            first = await asyncio.gather(*(
                http.post("/v1/sessions/busy-1/events", json={"action": "home", "event_id": f"e{i}"}) for i in range(5)
            ))
            shed = [i for i, answer in enumerate(first) if answer.status_code == 503]
            assert sorted(answer.status_code for answer in first) == [200] + [503] * 4
            for i in shed:
                assert_clean_error(first[i], 503)
                assert first[i].headers["Retry-After"] == "1"
            retried = [await http.post("/v1/sessions/busy-1/events", json={"action": "home", "event_id": f"e{i}"})
                       for i in shed]
            metrics = (await http.get("/metrics")).text
    assert [answer.status_code for answer in retried] == [200] * 4
    assert sorted(a.json()["event_index"] for a in [*retried, *(a for a in first if a.status_code == 200)]) == [
        0, 1, 2, 3, 4]
    assert redis.Redis.from_url(redis_url).llen(KeyScheme().session("busy-1").window) == 5
    assert 'si_errors_total{cause="overload"} 4.0' in metrics


def test_a_passed_deadline_is_a_504(model_dir: Path, redis_url: str) -> None:
    settings = service_settings(model_dir, redis_url, request_deadline_ms=1, max_queue_delay_ms=100)
    with UvicornThread(create_app(settings)) as running, httpx.Client(base_url=running.url) as http:
        answer = http.post("/v1/sessions/late-1/events", json={"action": "home"})
        assert_clean_error(answer, 504)
        assert 'si_errors_total{cause="deadline"} 1.0' in http.get("/metrics").text


def test_a_model_for_another_feature_layout_refuses_to_start(
    model_dir: Path, redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = copy_with_card(model_dir, tmp_path / "wrong", fingerprint="0123456789abcdef")
    with caplog.at_level(logging.CRITICAL, logger="service.app"), pytest.raises(RuntimeError, match="startup"):
        UvicornThread(create_app(service_settings(wrong, redis_url))).start()
    message = " ".join(record.getMessage() for record in caplog.records)
    assert "refusing to start" in message and "'0123456789abcdef'" in message and "feature layout" in message

    result = CliRunner().invoke(serve_cli_app(), ["serve", "--model-dir", str(wrong), "--port", "1"])
    assert result.exit_code == 2
    assert "refusing to start" in result.output and "Retrain or re-export" in " ".join(result.output.split())
