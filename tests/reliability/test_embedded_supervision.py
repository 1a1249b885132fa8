"""The embedded Redis is supervised: killed, it is replaced on the same socket, empty, and the log says so."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from service.app import create_app
from service.store.embedded import EmbeddedRedis
from tests.service_support import service_settings
from tests.uvicorn_proc import UvicornThread

DATA_GONE = "Its data is gone"


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> float:
    """Seconds until `predicate()` is true; fails the test past the timeout."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, "condition not reached in time"
        time.sleep(0.02)
    return time.monotonic() - start


def answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=0.2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def test_a_killed_server_is_replaced_on_the_same_url_and_the_loss_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    embedded = EmbeddedRedis().start()
    try:
        url, first_pid = embedded.url, embedded.pid
        assert first_pid is not None
        redis.Redis.from_url(url).set("k", "v")
        with caplog.at_level(logging.WARNING, logger="service.store.embedded"):
            os.kill(first_pid, signal.SIGKILL)
            wait_for(lambda: embedded.restarts == 1 and answers(url))
        assert embedded.pid != first_pid
        assert redis.Redis.from_url(url).get("k") is None  # the new server starts empty
        assert any(DATA_GONE in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
        socket_dir = Path(embedded.socket).parent
    finally:
        embedded.stop()
    assert not socket_dir.exists()


def test_stop_is_not_a_crash_and_nothing_restarts_afterwards() -> None:
    embedded = EmbeddedRedis().start()
    pid = embedded.pid
    embedded.stop()
    time.sleep(0.3)  # longer than the first restart backoff
    assert embedded.restarts == 0 and embedded.pid is None
    assert pid is not None and not _alive(pid)


def test_a_crash_loop_backs_off_instead_of_spinning() -> None:
    embedded = EmbeddedRedis().start()
    try:
        started = time.monotonic()
        for kills in range(4):
            wait_for(lambda n=kills: embedded.restarts == n and embedded.pid is not None and answers(embedded.url))
            pid = embedded.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: embedded.restarts == 4 and answers(embedded.url))
        assert time.monotonic() - started >= 0.05 + 0.1 + 0.2 + 0.4  # the doubling backoff between restarts
    finally:
        embedded.stop()


def test_the_service_on_the_embedded_default_recovers_from_a_killed_redis(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No restart of the service: readiness comes back by itself and clicks score again (a fresh session)."""
    import psutil

    settings = service_settings(model_dir, None, request_deadline_ms=10_000)
    with UvicornThread(create_app(settings)) as running, httpx.Client(base_url=running.url, timeout=10) as http:
        assert http.post("/v1/sessions/e-1/events", json={"action": "home"}).json()["event_index"] == 0
        servers = [p for p in psutil.Process().children() if "si-redis-" in " ".join(p.cmdline())]
        assert len(servers) == 1
        with caplog.at_level(logging.WARNING, logger="service.store.embedded"):
            servers[0].kill()
            recovered_s = wait_for(lambda: http.get("/readyz").status_code == 200)
        answer = http.post("/v1/sessions/e-1/events", json={"action": "home"})
        assert answer.status_code == 200 and answer.json()["event_index"] == 0  # the old window is gone
        assert http.get("/healthz").status_code == 200
    print(f"\nembedded redis killed under a running service: /readyz green again after {recovered_s:.3f} s")
    assert recovered_s < 2.0
    assert any(DATA_GONE in r.getMessage() for r in caplog.records)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
