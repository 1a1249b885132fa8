"""The whole service against a real local Redis Cluster (docs/architecture.md §9): six cluster-mode redis-servers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from service.app import create_app
from service.store.keys import KeyScheme
from service.user_ids import user_id_hasher
from tests.cluster_procs import RedisClusterProcs, start_cluster_or_skip
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

SESSIONS = [f"c-{i}" for i in range(8)]  # enough ids to land on all three masters


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcs]:
    procs = start_cluster_or_skip(tmp_path_factory.mktemp("cluster"))
    yield procs
    procs.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cluster: RedisClusterProcs) -> Iterator[UvicornThread]:
    host, port = cluster.startup_node
    settings = service_settings(tiny_model_dir(tmp_path_factory.getbasetemp()), f"redis://{host}:{port}/0",
                                redis_cluster=True, cluster_history=True, request_deadline_ms=10_000, score_flush_ms=1)
    with UvicornThread(create_app(settings)) as running:
        yield running


def test_the_api_runs_unchanged_on_a_cluster(server: UvicornThread) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/readyz").status_code == 200
        for session in SESSIONS:
            for i, action in enumerate(["home", "add_cart", "view_cart"]):
                answer = http.post(f"/v1/sessions/{session}/events", json={"action": action, "event_id": f"{i}"})
                assert answer.status_code == 200 and answer.json()["event_index"] == i
        retried = http.post(f"/v1/sessions/{SESSIONS[0]}/events", json={"action": "add_cart", "event_id": "1"})
        assert retried.json()["event_index"] == 1 and retried.json()["window"] == 2

        deadline = time.monotonic() + 3
        while len(http.get("/v1/at-risk", params={"min_risk": 0}).json()["sessions"]) < len(SESSIONS):
            assert time.monotonic() < deadline, "the at-risk index never listed every session"
            time.sleep(0.01)
        assert http.get(f"/v1/sessions/{SESSIONS[1]}/risk").json()["events"] == 3
        assert len(http.get(f"/v1/sessions/{SESSIONS[2]}/explain").json()["contributions"]) == 3
        assert http.delete(f"/v1/sessions/{SESSIONS[3]}").status_code == 204
        listed = {s["session_id"] for s in http.get("/v1/at-risk", params={"min_risk": 0}).json()["sessions"]}
        assert listed == set(SESSIONS) - {SESSIONS[3]}


def test_a_shoppers_history_is_kept_and_erased_on_a_cluster(server: UvicornThread, cluster: RedisClusterProcs) -> None:
    """Clicks with a user_id build the user's record on its own slot (docs/redis.md "Redis Cluster: history at a
    session's first click"); DELETE /v1/users/{id} erases it and the running session's items."""
    keys = KeyScheme()
    user_key = keys.user(user_id_hasher(server.app.state.settings).digest("u-1029"))
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for session in ("shop-1", "shop-2"):
            for i, action in enumerate(["view_product", "add_cart"]):
                click = {"action": action, "event_id": f"{session}-{i}", "user_id": "u-1029", "item_id": "sku-7",
                         "category_id": "c-1"}
                assert http.post(f"/v1/sessions/{session}/events", json=click).status_code == 200
        client = redis.RedisCluster(*cluster.startup_node)
        try:
            record = client.hgetall(user_key)
            assert record[b"s"] == b"1" and record[b"e"] == b"2" and record[b"r"] == b"shop-2"
            assert client.hget(keys.context("shop-2"), "hs") == b"1"
            assert http.delete("/v1/users/u-1029").status_code == 204
            assert client.exists(user_key) == 0 and client.exists(keys.context("shop-2")) == 0
        finally:
            client.close()
