"""Request ids and structured logs (docs/service.md "Request ids", "Logs"), against a real uvicorn and Redis.

One click's id is in its answer's `X-Request-ID`, in its error body, and in its log line; a JSON log holds
no session id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.request_id import MAX_LENGTH
from tests.redis_procs import RedisServer
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import ServeProcess, UvicornThread


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def http(model_dir: Path, redis_server: RedisServer) -> Iterator[httpx.Client]:
    with (UvicornThread(create_app(service_settings(model_dir, redis_server.url))) as server,
          httpx.Client(base_url=server.url) as client):
        yield client


def test_a_valid_request_id_is_echoed_and_a_missing_one_is_made(http: httpx.Client) -> None:
    given = http.post("/v1/sessions/rid-1/events", json={"action": "home"}, headers={"X-Request-ID": "shop-42.a:b_c"})
    assert given.status_code == 200 and given.headers["X-Request-ID"] == "shop-42.a:b_c"
    made = [http.post("/v1/sessions/rid-1/events", json={"action": "home"}).headers["X-Request-ID"] for _ in range(2)]
    assert made[0] != made[1] and all(0 < len(rid) <= MAX_LENGTH for rid in made)
    assert http.get("/healthz").headers["X-Request-ID"]  # every route, not only the click


@pytest.mark.parametrize("bad", ["x" * (MAX_LENGTH + 1), "a b", "a\"b", "ü", "a{b}"])
def test_an_invalid_request_id_is_replaced(http: httpx.Client, bad: str) -> None:
    answer = http.get("/healthz", headers={"X-Request-ID": bad.encode()})
    assert answer.headers["X-Request-ID"] not in (bad, "")


def test_error_bodies_carry_the_request_id(http: httpx.Client) -> None:
    invalid = http.post("/v1/sessions/rid-2/events", json={"action": "fly"}, headers={"X-Request-ID": "bad-click-1"})
    assert invalid.status_code == 422 and invalid.json()["request_id"] == "bad-click-1"
    missing = http.get("/v1/sessions/never-seen/risk", headers={"X-Request-ID": "no-such-session"})
    assert missing.status_code == 404 and missing.json()["request_id"] == "no-such-session"
    unmatched = http.get("/nowhere")
    assert unmatched.json()["request_id"] == unmatched.headers["X-Request-ID"]


def test_a_clicks_id_is_in_its_json_log_line_and_no_session_id_is(model_dir: Path, redis_server: RedisServer,
                                                                  tmp_path: Path) -> None:
    env = {"SI_MODEL_DIR": str(model_dir), "SI_REDIS_URL": redis_server.url, "SI_AUTH_ENABLED": "false",
           "SI_LOG_FORMAT": "json", "SI_PROVIDERS": "CPUExecutionProvider"}
    serve = ServeProcess(env, log_path=tmp_path / "serve.log", args=("--access-log",)).start()
    try:
        with httpx.Client(base_url=serve.url) as client:
            answer = client.post("/v1/sessions/secret-shopper-7/events", json={"action": "home"},
                                 headers={"X-Request-ID": "click-in-the-log"})
            assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "click-in-the-log"
    finally:
        output = serve.stop()
    lines = [line for line in output.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records and len(records) == len([line for line in output.splitlines() if line.strip()]), output
    assert all({"ts", "level", "logger", "message", "request_id"} <= set(r) for r in records)
    (click,) = [r for r in records if r["request_id"] == "click-in-the-log"]
    assert click["logger"] == "service.access" and click["status"] == 200
    assert click["route"] == "/v1/sessions/{session_id}/events" and click["level"] == "INFO"
    assert not any("secret-shopper-7" in line for line in lines)  # the template, never the user's session id
