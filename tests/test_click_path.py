"""The lean click path (service/click_path.py) answers exactly as the full FastAPI route does, errors included."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from service.app import create_app
from service.click_path import ClickRoute
from service.scopes import EVENTS_WRITE
from tests.redis_procs import RedisServer
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

LEAN = {"content-type": "application/json"}
# FastAPI reads any +json type as JSON; the lean path takes only application/json, so this goes the full way.
FULL = {"content-type": "application/merge-patch+json"}
T0 = 1_795_000_000.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[UvicornThread]:
    settings = service_settings(tiny_model_dir(tmp_path_factory.getbasetemp()), redis_server.url,
                                request_deadline_ms=10_000, redis_timeout_ms=5_000)
    with UvicornThread(create_app(settings)) as running:
        yield running


def post(http: httpx.Client, session: str, body: str, headers: dict[str, str]) -> httpx.Response:
    return http.post(f"/v1/sessions/{session}/events", content=body.encode(), headers=headers)


def test_the_click_route_is_found_so_the_lean_path_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    found = ClickRoute.find(create_app(service_settings(tiny_model_dir(tmp_path_factory.getbasetemp()), None)))
    assert found is not None and found.scope == EVENTS_WRITE


def test_lean_and_full_paths_give_the_same_answer(server: UvicornThread, redis_url: str) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for i, action in enumerate(["home", "view_product", "add_cart"]):
            body = f'{{"action": "{action}", "ts": {T0 + 9 * i}, "from_ad": {str(i == 1).lower()}}}'
            lean, full = post(http, "lean-1", body, LEAN), post(http, "full-1", body, FULL)
            assert lean.status_code == full.status_code == 200
            assert lean.headers["content-type"] == full.headers["content-type"] == "application/json"
            assert {**lean.json(), "session_id": "x"} == {**full.json(), "session_id": "x"}


@pytest.mark.parametrize("body", ['{"action": "fly"}', '{"action": "home", "ts": "soon"}', "{not json", "[]", ""])
def test_an_invalid_click_gets_the_full_routes_422(server: UvicornThread, redis_url: str, body: str) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        lean, full = post(http, "bad-1", body, LEAN), post(http, "bad-1", body, FULL)
    assert lean.status_code == full.status_code == 422
    lean_body, full_body = lean.json(), full.json()
    assert lean_body.pop("request_id") != full_body.pop("request_id")  # one id per request
    assert lean_body == full_body and lean_body["fields"]
