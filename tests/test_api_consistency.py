"""What the coupon engine reads is what happened (issue 11), through real uvicorn and a real redis-server:

- an order closes the cart: the risk of the order click is p_add_cart × (1 − p_make_order) and the buyer
  leaves /v1/at-risk (model/risk.py);
- read-your-writes: on the replica that answered a click, /risk returns that answer at once; another
  replica says how current its answer is (`pending`, `event_index` vs `latest_event_index`);
- idempotency: a retry with the same event_id and body gets the first answer, another body a 409;
  neither appends anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.app import create_app
from service.store.keys import KeyScheme
from service.store.score_record import F
from tests.redis_procs import RedisServer
from tests.service_support import service_settings, tiny_model_dir, written
from tests.uvicorn_proc import UvicornThread

SCORE_FIELDS = ("event_index", "p_add_cart", "p_make_order", "abandonment_risk", "intent", "model", "window")
T0 = float(int(time.time()) - 3_600)
# Long enough that a test reads before the write-behind has flushed, short enough to wait for it.
FLUSH_MS = 1_500


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


def replica(model_dir: Path, redis_url: str) -> UvicornThread:
    settings = service_settings(model_dir, redis_url, request_deadline_ms=10_000, redis_timeout_ms=5_000,
                                score_flush_ms=FLUSH_MS)
    return UvicornThread(create_app(settings))


@pytest.fixture(scope="module")
def replicas(model_dir: Path, redis_server: RedisServer) -> Iterator[tuple[UvicornThread, UvicornThread]]:
    """Two replicas of the service on one Redis."""
    with replica(model_dir, redis_server.url) as a, replica(model_dir, redis_server.url) as b:
        yield a, b


@pytest.fixture()
def http(replicas: tuple[UvicornThread, UvicornThread], redis_url: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    a, b = replicas
    with httpx.Client(base_url=a.url, timeout=10) as on_a, httpx.Client(base_url=b.url, timeout=10) as on_b:
        yield on_a, on_b


def click(client: httpx.Client, session: str, action: str, **fields: object) -> httpx.Response:
    return client.post(f"/v1/sessions/{session}/events", json={"action": action, **fields})



def listed(client: httpx.Client) -> set[str]:
    sessions = client.get("/v1/at-risk", params={"min_risk": 0.0, "limit": 1000}).json()["sessions"]
    return {s["session_id"] for s in sessions}


def test_an_order_closes_the_cart_and_the_buyer_leaves_at_risk(http: tuple[httpx.Client, httpx.Client],
                                                              redis_url: str) -> None:
    a, _ = http
    answers = [click(a, "buyer-1", action, ts=T0 + i).json()
               for i, action in enumerate(["home", "add_cart", "view_cart"])]
    assert answers[-1]["abandonment_risk"] == pytest.approx(1 - answers[-1]["p_make_order"], abs=1e-6)
    written(redis_url, "buyer-1", 2)
    assert "buyer-1" in listed(a)

    order = click(a, "buyer-1", "order", ts=T0 + 3).json()
    assert order["abandonment_risk"] == pytest.approx(order["p_add_cart"] * (1 - order["p_make_order"]), abs=2e-6)
    risk = a.get("/v1/sessions/buyer-1/risk").json()
    assert risk["cart"] == "closed" and risk["cart_has_items"] is False
    written(redis_url, "buyer-1", 3)
    assert "buyer-1" not in listed(a)

    again = click(a, "buyer-1", "add_cart", ts=T0 + 4).json()  # a new cart after the order
    assert again["abandonment_risk"] == pytest.approx(1 - again["p_make_order"], abs=1e-6)
    written(redis_url, "buyer-1", 4)
    assert "buyer-1" in listed(a)


def test_the_replica_that_answered_reads_its_own_answer(http: tuple[httpx.Client, httpx.Client]) -> None:
    a, _ = http
    for i, action in enumerate(["home", "view_product", "add_cart", "view_cart", "order", "home"]):
        answer = click(a, "ryw-1", action, ts=T0 + i).json()
        read = a.get("/v1/sessions/ryw-1/risk")  # before the write-behind flushed (FLUSH_MS)
        assert read.status_code == 200, read.text
        body = read.json()
        assert {k: body[k] for k in SCORE_FIELDS} == {k: answer[k] for k in SCORE_FIELDS}
        assert body["pending"] is False and body["latest_event_index"] == i


def test_another_replica_says_how_current_its_answer_is(http: tuple[httpx.Client, httpx.Client],
                                                        redis_url: str) -> None:
    a, b = http
    click(a, "far-1", "home", ts=T0)
    first = b.get("/v1/sessions/far-1/risk")
    assert first.status_code == 200, "a live session is never a 404"
    assert first.json()["pending"] is True and first.json()["event_index"] is None
    assert first.json()["latest_event_index"] == 0 and first.json()["abandonment_risk"] is None
    written(redis_url, "far-1", 0)
    click(a, "far-1", "add_cart", ts=T0 + 1)
    lagging = b.get("/v1/sessions/far-1/risk").json()
    assert lagging["pending"] is True and (lagging["event_index"], lagging["latest_event_index"]) == (0, 1)
    assert lagging["cart"] == "open"  # session state is read from Redis, so it is current
    written(redis_url, "far-1", 1)
    current = b.get("/v1/sessions/far-1/risk").json()
    assert current["pending"] is False and current["event_index"] == 1


def test_a_retry_gets_the_first_answer_and_another_body_a_409(http: tuple[httpx.Client, httpx.Client],
                                                              redis_url: str) -> None:
    a, b = http
    first = click(a, "idem-1", "view_product", event_id="e-1", ts=T0, from_ad=True)
    assert first.status_code == 200
    window_len = redis.Redis.from_url(redis_url).llen(KeyScheme().session("idem-1").window)
    assert click(a, "idem-1", "view_product", event_id="e-1", ts=T0, from_ad=True).json() == first.json()

    conflict = click(a, "idem-1", "add_cart", event_id="e-1", ts=T0, from_ad=True)
    assert conflict.status_code == 409
    assert "e-1" in conflict.json()["error"]
    assert [f["field"] for f in conflict.json()["fields"]] == ["body.action"]
    written(redis_url, "idem-1", 0)  # the stored answer keeps the body: the comparison holds from Redis too
    on_b = click(b, "idem-1", "view_product", event_id="e-1", ts=T0 + 1)
    assert on_b.status_code == 409
    assert [f["field"] for f in on_b.json()["fields"]] == ["body.ts", "body.from_ad"]
    assert click(b, "idem-1", "view_product", event_id="e-1", ts=T0, from_ad=True).json() == first.json()

    store = redis.Redis.from_url(redis_url)
    assert store.llen(KeyScheme().session("idem-1").window) == window_len == 1
    assert int(store.hget(KeyScheme().session("idem-1").meta, F["count"]) or 0) == 1


def test_a_retry_with_other_ids_is_a_409_and_the_ids_are_not_stored_raw(http: tuple[httpx.Client, httpx.Client],
                                                                        redis_url: str) -> None:
    a, b = http
    ids = {"item_id": "sku-553", "category_id": "shoes", "user_id": "u-1029"}
    first = click(a, "idem-ids", "view_product", event_id="e-ids", ts=T0, **ids)
    assert first.status_code == 200, first.text
    assert click(a, "idem-ids", "view_product", event_id="e-ids", ts=T0, **ids).json() == first.json()
    for field, other in (("item_id", "sku-554"), ("category_id", "hats"), ("user_id", "u-1030")):
        conflict = click(a, "idem-ids", "view_product", event_id="e-ids", ts=T0, **{**ids, field: other})
        assert conflict.status_code == 409, (field, conflict.text)
        assert [f["field"] for f in conflict.json()["fields"]] == [f"body.{field}"]
    written(redis_url, "idem-ids", 0)  # from Redis too, on the other replica
    left_out = click(b, "idem-ids", "view_product", event_id="e-ids", ts=T0, user_id="u-1029")
    assert left_out.status_code == 409
    assert [f["field"] for f in left_out.json()["fields"]] == ["body.item_id", "body.category_id"]
    assert click(b, "idem-ids", "view_product", event_id="e-ids", ts=T0, **ids).json() == first.json()

    store = redis.Redis.from_url(redis_url)
    keys = KeyScheme().session("idem-ids")
    assert store.llen(keys.window) == 1
    remembered = b"".join(store.hvals(keys.events))
    assert not any(raw.encode() in remembered for raw in ids.values())  # digests only (docs/privacy.md)
