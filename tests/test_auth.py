"""API keys and scopes (docs/architecture.md §7): the matrix over every route the app has, through a real uvicorn."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from pydantic import ValidationError

from service.app import create_app
from service.auth import ApiKeyAuth, hash_key
from service.settings import Settings
from tests.redis_procs import RedisServer
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

KEYS = {"writer": "key-writer-1", "reader": "key-reader-1", "admin": "key-admin-1", "both": "key-both-1"}
SCOPES = {
    "writer": ["events:write"], "reader": ["risk:read"], "admin": ["admin"], "both": ["events:write", "risk:read"],
}
OPEN = None
# Every (method, path) the app serves and the scope it needs; OPEN needs none. A route added to the app
# without a line here fails test_the_matrix_covers_every_route.
EXPECTED: dict[tuple[str, str], str | None] = {
    ("POST", "/v1/sessions/{session_id}/events"): "events:write",
    ("DELETE", "/v1/sessions/{session_id}"): "admin",
    ("DELETE", "/v1/users/{user_id}"): "admin",
    ("GET", "/v1/sessions/{session_id}/risk"): "risk:read",
    ("GET", "/v1/at-risk"): "risk:read",
    ("GET", "/v1/sessions/{session_id}/explain"): "risk:read",
    ("GET", "/v1/model"): "risk:read",
    ("POST", "/v1/admin/model"): "admin",
    ("PUT", "/v1/admin/shadow"): "admin",
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
}
SESSION = "auth-s1"
# A body an authorised call succeeds with (the click's otherwise): reload the served version, stop the shadow.
BODIES: dict[tuple[str, str], dict[str, object]] = {
    ("POST", "/v1/admin/model"): {}, ("PUT", "/v1/admin/shadow"): {"version": None},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[UvicornThread]:
    hashed = {hash_key(KEYS[name]): scopes for name, scopes in SCOPES.items()}
    settings = service_settings(tiny_model_dir(tmp_path_factory.getbasetemp()), redis_server.url,
                                auth_enabled=None, api_keys=hashed, request_deadline_ms=10_000,
                                score_flush_ms=1)
    with UvicornThread(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: UvicornThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def served_routes(server: UvicornThread) -> list[tuple[str, str]]:
    """(method, path) of every route of the running app, HEAD aside (Starlette adds it to each GET)."""
    found = []
    for route in iter_route_contexts(server.app.routes):  # routes of included routers too, with their prefix
        assert route.path is not None, route
        path = route.path.replace(":any", "")  # session routes take {session_id:any} (service/routes/convertors.py)
        found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    found = sorted(set(found))  # the click's hidden {session_id:any} twin has the same method and template
    return found


def call(http: httpx.Client, method: str, path: str, key: str | None) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    url = path.replace("{session_id}", SESSION).replace("{user_id}", "auth-u1")
    body = BODIES.get((method, path), {"action": "home"} if method == "POST" else None)
    return http.request(method, url, json=body, headers=headers)


def ensure_session(http: httpx.Client) -> None:
    """A live, scored session, so that an authorised call is a 2xx rather than a 404."""
    if call(http, "GET", "/v1/sessions/{session_id}/risk", KEYS["admin"]).status_code == 200:
        return
    assert call(http, "POST", "/v1/sessions/{session_id}/events", KEYS["admin"]).status_code == 200
    deadline = time.monotonic() + 2.0
    while call(http, "GET", "/v1/sessions/{session_id}/risk", KEYS["admin"]).status_code != 200:
        assert time.monotonic() < deadline, "session scores were never stored"
        time.sleep(0.002)


def test_the_matrix_covers_every_route(server: UvicornThread) -> None:
    assert sorted(served_routes(server)) == sorted(EXPECTED)


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_auth_matrix(http: httpx.Client, method: str, path: str) -> None:
    scope = EXPECTED[(method, path)]
    for key in (None, "not-a-key"):
        ensure_session(http)
        answer = call(http, method, path, key)
        if scope is OPEN:
            assert answer.status_code == 200, (key, answer.text)
        else:
            assert answer.status_code == 401, (key, answer.text)
            assert "Traceback" not in answer.text and "error" in answer.json()
    for name, scopes in SCOPES.items():
        ensure_session(http)
        answer = call(http, method, path, KEYS[name])
        allowed = scope is OPEN or scope in scopes or "admin" in scopes
        if allowed:
            assert answer.status_code in (200, 204), (name, answer.status_code, answer.text)
        else:
            assert answer.status_code == 403, (name, answer.status_code, answer.text)
            assert scope in answer.json()["error"]


def test_openapi_with_auth_lists_the_key_on_exactly_the_scoped_routes(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    for (method, path), scope in EXPECTED.items():
        operation = spec["paths"].get(path, {}).get(method.lower())
        if operation is None:  # /openapi.json, /docs and /redoc are not in the spec
            continue
        if scope is OPEN:
            assert "security" not in operation, path
        else:
            assert operation["security"] == [{"APIKeyHeader": []}], path
            assert {"401", "403"} <= set(operation["responses"]), path


def test_auth_runs_before_validation(http: httpx.Client) -> None:
    """An anonymous caller cannot probe the body rules: a bad body without a key is a 401."""
    answer = http.post(f"/v1/sessions/{SESSION}/events", json={"action": "nope"})
    assert answer.status_code == 401


def test_keys_are_matched_by_digest_and_admin_implies_every_scope() -> None:
    auth = ApiKeyAuth({hash_key("a"): ["admin"], hash_key("r"): ["risk:read"]}, enabled=True)
    assert auth.scopes_of("a") == frozenset({"admin"})
    assert auth.scopes_of("r") == frozenset({"risk:read"})
    assert auth.scopes_of(hash_key("r")) is None  # the digest itself is not a key
    assert auth.scopes_of("x") is None
    auth.check("a", "events:write")  # admin: no exception
    ApiKeyAuth({}, enabled=False).check(None, "admin")  # auth off: no exception


def test_settings_refuse_plaintext_keys_unknown_scopes_and_auth_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SI_")]:
        monkeypatch.delenv(name)
    with pytest.raises(ValidationError, match="sha256 hex digest") as plaintext:
        Settings(api_keys={"my-secret-key": ["admin"]})
    assert "my-secret-key" not in str(plaintext.value)  # the key must not reach the logs
    with pytest.raises(ValidationError, match="unknown scope"):
        Settings(api_keys={hash_key("k"): ["root"]})
    with pytest.raises(ValidationError, match="SI_API_KEYS is empty"):
        Settings(redis_url="redis://localhost:6379/0")  # a real Redis means auth on by default
    assert not Settings().auth_active  # the embedded default runs open (with a loud warning)
    assert Settings(redis_url="redis://x:1/0", auth_enabled=False).auth_active is False
