"""The whole service against a real local Redis Cluster (docs/architecture.md §9): six cluster-mode redis-servers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from service.app import create_app
from tests.cluster_procs import start_cluster_or_skip
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

SESSIONS = [f"c-{i}" for i in range(8)]  # enough ids to land on all three masters


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornThread]:
    cluster = start_cluster_or_skip(tmp_path_factory.mktemp("cluster"))
    host, port = cluster.startup_node
    settings = service_settings(tiny_model_dir(tmp_path_factory.getbasetemp()), f"redis://{host}:{port}/0",
                                redis_cluster=True, request_deadline_ms=10_000, score_flush_ms=1)
    try:
        with UvicornThread(create_app(settings)) as running:
            yield running
    finally:
        cluster.stop()


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
