"""Hand-written hostile input: each gets a clear 4xx JSON answer, and nothing reaches Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis

from service.app import create_app
from service.store.score_record import F
from service.store.window_store import SessionWindowStore
from tests.redis_procs import RedisServer
from tests.service_support import service_settings
from tests.uvicorn_proc import UvicornThread

JSON = {"content-type": "application/json"}
LEAKS = ("Traceback", "File \"", ".py\"")


@pytest.fixture(scope="module")
def server(model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    with UvicornThread(create_app(service_settings(model_dir, redis_server.url, request_deadline_ms=10_000))) as run:
        yield run


@pytest.fixture()
def http(server: UvicornThread, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def deep(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


BAD_BODIES: dict[str, bytes] = {
    "nested arrays past the recursion limit": f'{{"action": "home", "from_ad": {deep(1500)}}}'.encode(),
    "nested objects in action": ('{"action": ' + '{"a": ' * 300 + "1" + "}" * 300 + "}").encode(),
    "deep nesting as the whole body": deep(2000).encode(),
    "latin-1 bytes": b'{"action": "h\xf4me"}',
    "invalid utf-8 in a key": b'{"act\xff\xfeion": "home"}',
    "lone surrogate escape": b'{"action": "\\ud800"}',
    "NaN ts": b'{"action": "home", "ts": NaN}',
    "Infinity ts": b'{"action": "home", "ts": Infinity}',
    "overflowing ts": b'{"action": "home", "ts": 1e400}',
    "ts in milliseconds": b'{"action": "home", "ts": 1764000000000}',
    "ts year 9999": b'{"action": "home", "ts": "9999-12-31T23:59:59Z"}',
    "ts epoch 0": b'{"action": "home", "ts": 0}',
    "ts before 1970": b'{"action": "home", "ts": -86400}',
    "ts 1900 RFC 3339": b'{"action": "home", "ts": "1900-01-01T00:00:00Z"}',
    "ts without offset": b'{"action": "home", "ts": "2026-11-22T10:15:03"}',
    "ts as bool": b'{"action": "home", "ts": true}',
    "empty body": b"",
    "truncated json": b'{"action": "ho',
    "json array": b'["home"]',
    "null": b"null",
    "unknown field": b'{"action": "home", "user": "x"}',
    "action with NUL": b'{"action": "home\\u0000"}',
    "event_id empty": b'{"action": "home", "event_id": ""}',
    "event_id over 128 chars": b'{"action": "home", "event_id": "' + b"e" * 129 + b'"}',
}

BAD_SESSION_IDS: dict[str, str] = {
    "open brace": "a{b",
    "close brace": "a}b",
    "hash tag": "{x}",
    "glob star": "s*",
    "newline": "s\nx",
    "carriage return": "s\r\nSET x 1",
    "space": "s x",
    "slash": "a/b",
    "10k chars": "s" * 10_000,
    "129 chars": "s" * 129,
    "non-ascii": "sé",
    "nul": "s\x00",
}


def assert_clean_4xx(answer: httpx.Response) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"] == "application/json", answer.headers
    body = answer.json()
    assert isinstance(body["error"], str) and body["error"]
    if answer.status_code == 422:
        assert body["fields"] and all(f["field"] for f in body["fields"])
    assert not any(leak in answer.text for leak in LEAKS)


def assert_nothing_written(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0, client.keys("*")[:10]
    finally:
        client.close()


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_a_hostile_body_is_a_clear_4xx_and_writes_nothing(http: httpx.Client, redis_url: str, name: str) -> None:
    answer = http.post("/v1/sessions/bad-body/events", content=BAD_BODIES[name], headers=JSON)
    assert_clean_4xx(answer)
    assert_nothing_written(redis_url)


@pytest.mark.parametrize("name", sorted(BAD_SESSION_IDS))
def test_a_session_id_built_to_break_keys_is_a_clear_4xx_and_writes_nothing(
    http: httpx.Client, redis_url: str, name: str
) -> None:
    path_id = quote(BAD_SESSION_IDS[name], safe="")
    for method, path in (("POST", f"/v1/sessions/{path_id}/events"), ("GET", f"/v1/sessions/{path_id}/risk"),
                         ("GET", f"/v1/sessions/{path_id}/explain"), ("DELETE", f"/v1/sessions/{path_id}")):
        answer = http.request(method, path, json={"action": "home"} if method == "POST" else None)
        if answer.status_code == 404 and method != "POST":
            # A slash splits the path: no route matches, which is also a clean 4xx.
            assert name == "slash", answer.text
        assert_clean_4xx(answer)
    assert_nothing_written(redis_url)


def test_a_colon_is_a_valid_session_id_and_stays_inside_its_own_keys(http: httpx.Client, redis_url: str) -> None:
    """`:` is allowed by the session id pattern; the {hash tag} keeps such an id inside its own keys."""
    assert http.post("/v1/sessions/a:b/events", json={"action": "home"}).status_code == 200
    client = redis.Redis.from_url(redis_url)
    store = SessionWindowStore(client)  # type: ignore[arg-type]  # a sync client: only its key scheme is used
    window_key, meta_key, ids_key = store.keys("a:b")
    # Wait for the write-behind to reach Redis itself (its scores and index entry are one script call), so
    # that it cannot land after the next test's flush; /risk answers from the replica's buffer before that.
    deadline = time.monotonic() + 5
    while not client.hexists(meta_key, F["event_index"]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    session_keys = {k.decode() for k in client.keys("*")} - {store.risk_key, store.expiry_key}
    client.close()
    own = {window_key, meta_key, ids_key, store.key_scheme.context("a:b"), store.key_scheme.outcomes("a:b")}
    assert {window_key, meta_key} <= session_keys <= own
    assert http.get("/v1/sessions/a/risk").status_code == 404  # no prefix of it exists as a session


def test_hostile_queries_on_the_reads_are_clear_4xx(http: httpx.Client, redis_url: str) -> None:
    for query in ("min_risk=NaN", "min_risk=-1", "min_risk=1e400", "limit=0", "limit=99999999999999999999",
                  "limit=1.5", "min_risk=%00"):
        assert_clean_4xx(http.get(f"/v1/at-risk?{query}"))
    assert_nothing_written(redis_url)
