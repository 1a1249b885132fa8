"""Bounded input and an OpenAPI that tells the truth (issue 11), through real uvicorn and a real redis-server.

Every refused click gets a JSON error naming the problem, and writes nothing to Redis.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from service.app import create_app
from service.schemas import MAX_CLOCK_SKEW_S, MAX_EVENT_AGE_S
from tests.redis_procs import RedisServer
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

JSON_BODY = b'{"action": "home"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[UvicornThread]:
    settings = service_settings(tiny_model_dir(tmp_path_factory.getbasetemp()), redis_server.url,
                                request_deadline_ms=10_000)
    with UvicornThread(create_app(settings)) as running:
        yield running


@pytest.fixture()
def http(server: UvicornThread, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def keys_in(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as connection:
        return int(connection.dbsize())


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"action": "home", "ts": time.time() + MAX_CLOCK_SKEW_S + 3_600}, "body.ts", "clock skew"),
        ({"action": "home", "ts": "2199-01-01T00:00:00Z"}, "body.ts", "future"),
        ({"action": "home", "ts": time.time() - MAX_EVENT_AGE_S - 3_600}, "body.ts", "days old"),
        ({"action": "home", "from_ad": "yes"}, "body.from_ad", "boolean"),
        ({"action": "home", "from_ad": 1}, "body.from_ad", "boolean"),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field_and_writes_nothing(
    http: httpx.Client, redis_url: str, body: dict[str, Any], field: str, needle: str
) -> None:
    answer = http.post("/v1/sessions/in-1/events", json=body)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["fields"]
    assert error["field"] == field and needle in error["message"]
    assert keys_in(redis_url) == 0


def test_a_ts_within_the_skew_is_accepted(http: httpx.Client, redis_url: str) -> None:
    assert http.post("/v1/sessions/in-2/events", json={"action": "home", "ts": time.time() + 60}).status_code == 200
    deadline = time.monotonic() + 5
    while keys_in(redis_url) < 4:  # window, meta and the two index keys: the write-behind is done
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_a_415(http: httpx.Client, redis_url: str, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    answer = http.post("/v1/sessions/in-3/events", content=JSON_BODY, headers=headers)
    assert answer.status_code == 415 and "application/json" in answer.json()["error"]
    assert keys_in(redis_url) == 0


@pytest.mark.parametrize("session", ["a%2Fb", "a%2F..%2Fb", "s%0Ax", "s" * 129, "s" * 60_000, "a%7Bb%7D"])
def test_a_malformed_session_id_is_a_422(http: httpx.Client, redis_url: str, session: str) -> None:
    status, content_type, body = raw_post(http, f"/v1/sessions/{session}/events")
    assert status == 422 and content_type == "application/json" and b"path.session_id" in body, body[:200]
    assert keys_in(redis_url) == 0


def test_past_the_http_parser_limit_uvicorn_answers_before_the_app(http: httpx.Client, redis_url: str) -> None:
    """A request line of 100,000 chars never reaches the app: uvicorn's parser (llhttp) refuses it with a
    plain-text 400 (documented in docs/service.md "Bounded input"). Nothing is written either way."""
    status, content_type, _ = raw_post(http, "/v1/sessions/" + "s" * 100_000 + "/events")
    assert status == 400 and content_type.startswith("text/plain")
    assert keys_in(redis_url) == 0


def raw_post(http: httpx.Client, path: str) -> tuple[int, str, bytes]:
    """POST over a plain socket: httpx refuses URLs over 64 KiB, and would re-encode `%2F`."""
    url = httpx.URL(str(http.base_url))
    head = (f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(JSON_BODY)}\r\nConnection: close\r\n\r\n")
    with socket.create_connection((url.host, url.port or 80), timeout=10) as sock:
        sock.sendall(head.encode() + JSON_BODY)
        data = b""
        while chunk := sock.recv(65_536):
            data += chunk
    header, _, body = data.partition(b"\r\n\r\n")
    lines = header.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers.get("content-type", ""), body


def test_openapi_without_auth_asks_for_no_key(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert "security" not in operation, (method, path)
            assert not {"401", "403"} & set(operation["responses"]), (method, path)


def test_openapi_has_an_example_for_every_response_and_query(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                assert "example" in parameter or "examples" in parameter.get("schema", parameter), (path, parameter)
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    ref = content.get("schema", {}).get("$ref", "")
                    has_example = "example" in content or "examples" in content or (
                        ref and "examples" in schemas[ref.rsplit("/", 1)[-1]])
                    assert has_example, (method, path, status, media)
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    events = spec["paths"]["/v1/sessions/{session_id}/events"]["post"]["responses"]
    assert {"409", "415", "422"} <= set(events)


@pytest.mark.parametrize(("page", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_docs_pages_load_their_assets_from_this_service(http: httpx.Client, page: str, asset: str) -> None:
    html = http.get(page).text
    assert f"/static-offline-docs/{asset}" in html and "cdn" not in html.lower()
    served = http.get(f"/static-offline-docs/{asset}")
    assert served.status_code == 200 and len(served.content) > 100_000


def test_the_documented_error_examples_are_what_the_service_answers(http: httpx.Client) -> None:
    """The OpenAPI examples take their messages from service/messages.py, as the answers do: compare them."""
    spec = http.get("/openapi.json").json()["paths"]

    def documented(path: str, method: str, status: int) -> Any:
        return spec[path][method]["responses"][str(status)]["content"]["application/json"]["example"]

    click = "/v1/sessions/{session_id}/events"
    cases = [
        (http.get("/v1/sessions/never-seen/risk"), "/v1/sessions/{session_id}/risk", "get", 404),
        (http.post("/v1/sessions/ex-1/events", content=JSON_BODY, headers={"Content-Type": "text/plain"}),
         click, "post", 415),
        (http.post("/v1/sessions/ex-1/events", content=b" " * 4097, headers={"Content-Type": "application/json"}),
         click, "post", 413),
    ]
    for answer, path, method, status in cases:
        assert answer.status_code == status, answer.text
        body = answer.json()
        assert body.pop("request_id") == answer.headers["x-request-id"]  # per request, so not in the example
        assert body == documented(path, method, status)
