"""The HTTP contract (docs/architecture.md §2, §7) through real uvicorn, real redis-server, a tiny trained model."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
import redis.asyncio

from bench.procs.round_trips import RoundTripCounter
from model.card import ModelCard
from model.features import ACTION_INDEX, ACTIONS, encode_window
from model.risk import INTENTS, abandonment_risk, intent_name
from service.app import create_app
from service.engine.onnx_engine import load_engine
from service.settings import Settings
from service.store.keys import KeyScheme
from service.store.window_store import SessionWindowStore
from service.store.window_values import AppendResult
from tests.redis_procs import RedisServer
from tests.service_support import WINDOW, copy_with_card, metric_sample, service_settings, tiny_model_dir, written
from tests.uvicorn_proc import UvicornThread

CONTRACT_FIELDS = {"session_id", "event_index", "p_add_cart", "p_make_order", "abandonment_risk", "intent", "model",
                   "window"}
# Midnight UTC yesterday: clicks must fall within MAX_EVENT_AGE_S of the server's clock.
T0 = float(int(time.time()) // 86_400 * 86_400 - 86_400)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, as if its training data had no `recommend` clicks (for the unseen-action metric)."""
    tiny = tiny_model_dir(tmp_path_factory.getbasetemp())
    coverage = {**ModelCard.load(tiny).slot_coverage, "recommend": 0}
    return copy_with_card(tiny, tmp_path_factory.mktemp("api") / "model", slot_coverage=coverage)


@pytest.fixture(scope="module")
def server(model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    # Generous deadlines: this suite checks behaviour, and shares 2 CPU cores with other test runs. Round trips
    # per click are 1 + 1/(clicks per score write); a write carries score_flush_records (64) clicks or those of
    # score_flush_ms: 100 ms at 620 QPS is 62, but this harness drives ~100 QPS, so the test waits 250 ms.
    settings = service_settings(model_dir, redis_server.url, request_deadline_ms=10_000, redis_timeout_ms=5_000,
                                score_flush_ms=250)
    with UvicornThread(create_app(settings)) as running:
        yield running


@pytest.fixture()
def client(server: UvicornThread, redis_url: str) -> Iterator[httpx.Client]:
    """A client of the module's service on a flushed Redis."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def click(http: httpx.Client, session: str, action: str, **fields: object) -> httpx.Response:
    return http.post(f"/v1/sessions/{session}/events", json={"action": action, **fields})


def test_click_answers_the_contract_with_the_shared_encoding(client: httpx.Client, model_dir: Path) -> None:
    actions = ["home", "category", "view_product", "add_cart", "view_cart", "category"]
    ts = [T0 + 7 * i for i in range(len(actions))]
    answers = [click(client, "enc-1", a, ts=t, from_ad=(i == 1)).json()
               for i, (a, t) in enumerate(zip(actions, ts, strict=True))]

    assert [set(a) for a in answers] == [CONTRACT_FIELDS] * len(actions)
    assert [a["event_index"] for a in answers] == list(range(len(actions)))
    assert [a["window"] for a in answers] == list(range(1, len(actions) + 1))
    # The same numbers from model.features + the engine + model.risk, outside the service:
    engine = load_engine(model_dir, precision="int8", providers=("CPUExecutionProvider",))
    card = engine.card
    codes = np.array([ACTION_INDEX[a] for a in actions])
    from_ad = np.array([False, True, False, False, False, False])
    windows = np.stack([encode_window(codes[: k + 1], np.array(ts[: k + 1]), from_ad[: k + 1], card.features)
                        for k in range(len(actions))])
    # One window per run, as the service ran them: int8's dynamic quantization scales depend on batch-mates.
    probs = np.concatenate([engine.run(w[None]) for w in windows])  # (6, 2)
    cart = np.arange(len(actions)) >= actions.index("add_cart")
    probs = np.round(probs.astype(np.float64), 6)  # answers carry 6 decimals
    risk = np.round(abandonment_risk(probs[:, 0], probs[:, 1], cart), 6)
    np.testing.assert_allclose([a["p_add_cart"] for a in answers], probs[:, 0], atol=1e-6)
    np.testing.assert_allclose([a["p_make_order"] for a in answers], probs[:, 1], atol=1e-6)
    np.testing.assert_allclose([a["abandonment_risk"] for a in answers], risk, atol=1e-6)
    expected_intents = [intent_name(p, r, card.thresholds) for p, r in zip(probs[:, 1], risk, strict=True)]
    assert [a["intent"] for a in answers] == expected_intents
    # The version label (the model directory's name outside a repository), then the engine's model id.
    assert all(a["model"] == f"{model_dir.name}:{engine.model_id}" for a in answers)


def test_window_caps_at_n_and_ts_accepts_rfc3339(client: httpx.Client) -> None:
    for i in range(WINDOW + 3):
        ts = datetime.fromtimestamp(T0 + i, UTC).isoformat().replace("+00:00", "Z") if i % 2 else T0 + i
        assert click(client, "cap-1", "category", ts=ts).status_code == 200
    last = click(client, "cap-1", "view_product").json()
    assert last["window"] == WINDOW and last["event_index"] == WINDOW + 3


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/sessions/ok/events", {"action": "home", "ts": "2026-11-22T10:15:03"}, "body.ts"),
        ("/v1/sessions/ok/events", {"action": "home", "ts": 1.795e12}, "body.ts"),
        ("/v1/sessions/ok/events", {"action": "home", "event_id": "x" * 129}, "body.event_id"),
        ("/v1/sessions/ok/events", {"action": "home", "fromAd": True}, "body.fromAd"),
        ("/v1/sessions/ok/events", {"ts": T0}, "body.action"),
        ("/v1/sessions/bad%20id/events", {"action": "home"}, "path.session_id"),
        ("/v1/sessions/" + "s" * 129 + "/events", {"action": "home"}, "path.session_id"),
        ("/v1/sessions/a{b}/events", {"action": "home"}, "path.session_id"),
    ],
)
def test_invalid_input_is_a_422_naming_the_field(client: httpx.Client, path: str, body: dict, field: str) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code == 422 and "Traceback" not in answer.text
    assert [f["field"] for f in answer.json()["fields"]] == [field]


def test_unknown_action_lists_the_valid_ones(client: httpx.Client) -> None:
    answer = click(client, "s", "checkout")
    assert answer.status_code == 422
    (error,) = answer.json()["fields"]
    assert error["field"] == "body.action"
    assert all(name in error["message"] for name in ACTIONS)


def test_malformed_json_is_a_422(client: httpx.Client) -> None:
    answer = client.post("/v1/sessions/s/events", content=b'{"action": ', headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["fields"][0]["field"].startswith("body")


def test_retried_event_id_returns_the_first_answer_and_appends_nothing(client: httpx.Client, redis_url: str) -> None:
    first = click(client, "retry-1", "add_cart", event_id="c-1", ts=T0).json()
    click(client, "retry-1", "view_cart", event_id="c-2", ts=T0 + 5)
    at_once = click(client, "retry-1", "add_cart", event_id="c-1", ts=T0)  # answered before its write-back
    assert at_once.status_code == 200 and at_once.json() == first
    written(redis_url, "retry-1", event_index=1)
    later = click(client, "retry-1", "add_cart", event_id="c-1", ts=T0)  # answered from Redis
    assert later.status_code == 200 and later.json() == first
    assert redis.Redis.from_url(redis_url).llen(KeyScheme().session("retry-1").window) == 2
    assert client.get("/v1/sessions/retry-1/risk").json()["events"] == 2


def test_retry_of_an_appended_but_unanswered_event_is_scored_once(client: httpx.Client, redis_url: str) -> None:
    """A click shed or timed out after its append left no answer; its retry gets one, and keeps it."""

    async def append_only() -> AppendResult:  # what the first attempt did before it failed
        async with redis.asyncio.Redis.from_url(redis_url) as connection:
            store = SessionWindowStore(connection, window=WINDOW)
            return await store.append_event("retry-2", "c-9", ACTION_INDEX["add_cart"], T0, False)

    appended = asyncio.run(append_only())
    first = click(client, "retry-2", "add_cart", event_id="c-9", ts=T0)
    again = click(client, "retry-2", "add_cart", event_id="c-9", ts=T0)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.json()["event_index"] == appended.event_index == 0 and first.json()["window"] == 1


def test_risk_reads_stored_scores_and_404s_unknown(client: httpx.Client) -> None:
    assert client.get("/v1/sessions/nobody/risk").status_code == 404
    answer = click(client, "risk-1", "add_cart", ts=T0).json()
    risk = stored(client, "risk-1", event_index=0)
    assert {k: risk[k] for k in CONTRACT_FIELDS} == answer
    assert risk["cart_has_items"] is True and risk["events"] == 1 and risk["expires_in_s"] > 0


def test_at_risk_ranks_live_sessions_and_bounds_limit(client: httpx.Client, redis_url: str) -> None:
    click(client, "cart-1", "add_cart")
    click(client, "browse-1", "home")
    written(redis_url, "cart-1", event_index=0)
    written(redis_url, "browse-1", event_index=0)
    ranked = client.get("/v1/at-risk", params={"min_risk": 0.0, "limit": 10}).json()
    ids = [s["session_id"] for s in ranked["sessions"]]
    assert ids[0] == "cart-1" and set(ids) == {"cart-1", "browse-1"}
    assert [s["abandonment_risk"] for s in ranked["sessions"]] == sorted(
        (s["abandonment_risk"] for s in ranked["sessions"]), reverse=True)
    over = client.get("/v1/at-risk", params={"limit": 1001})
    assert over.status_code == 422 and over.json()["fields"][0]["field"] == "query.limit"
    assert client.get("/v1/at-risk", params={"min_risk": 1.5}).json()["fields"][0]["field"] == "query.min_risk"


def test_delete_erases_the_session_everywhere(client: httpx.Client) -> None:
    click(client, "gone-1", "add_cart")
    stored(client, "gone-1", event_index=0)
    assert client.delete("/v1/sessions/gone-1").status_code == 204
    assert client.get("/v1/sessions/gone-1/risk").status_code == 404
    assert "gone-1" not in json.dumps(client.get("/v1/at-risk", params={"min_risk": 0}).json())
    assert client.delete("/v1/sessions/gone-1").status_code == 404


def test_explain_scores_all_occlusions_in_one_engine_batch(client: httpx.Client) -> None:
    assert client.get("/v1/sessions/nobody/explain").status_code == 404
    for i, action in enumerate(["home", "category", "add_cart", "view_cart"]):
        click(client, "why-1", action, ts=T0 + 20 * i)
    before = _batch_histogram(client)
    explained = client.get("/v1/sessions/why-1/explain").json()
    after = _batch_histogram(client)
    assert after["count"] - before["count"] == 1  # one engine run ...
    assert after["sum"] - before["sum"] == 5  # ... of the window and its 4 occlusions
    assert [c["action"] for c in explained["contributions"]] == ["home", "category", "add_cart", "view_cart"]
    risk = stored(client, "why-1", event_index=3)
    # int8's dynamic quantization scales depend on batch-mates: the 5-window batch moves the 6th decimal.
    assert explained["scores"]["p_add_cart"] == pytest.approx(risk["p_add_cart"], abs=1e-4)
    assert explained["intent"] in INTENTS


def test_body_over_the_limit_is_a_413(client: httpx.Client) -> None:
    big = {"action": "home", "event_id": "x" * 5000}
    assert click(client, "big", **big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
        yield json.dumps(big).encode()

    streamed = client.post("/v1/sessions/big/events", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.json() == {
        "error": "request body exceeds 4096 bytes", "request_id": streamed.headers["X-Request-ID"]}


async def test_200_concurrent_clicks_on_one_session(server: UvicornThread, redis_url: str) -> None:
    """event_index has no gaps or duplicates; the window holds the last N in arrival order; ≤ 1.1 Redis calls each."""
    store = redis.Redis.from_url(redis_url)
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
        # Warm: fill the service's Redis pool and load the scripts, one-time costs of a fresh process.
        await asyncio.gather(*(http.post(f"/v1/sessions/warm-{i}/events", json={"action": "home"}) for i in range(64)))
        sent = [(ACTIONS[i % 12], T0 + i) for i in range(200)]
        with RoundTripCounter(store) as trips:
            answers = await asyncio.gather(*(
                http.post("/v1/sessions/hot-1/events", json={"action": a, "ts": t}) for a, t in sent
            ))
            by_command = trips.take()
        calls = sum(by_command.values())
    print(f"\n200 concurrent clicks: {calls} Redis round trips, {calls / 200:.3f} per click ({dict(by_command)})")
    assert [r.status_code for r in answers] == [200] * 200
    indices = [r.json()["event_index"] for r in answers]
    assert sorted(indices) == list(range(200))
    by_index = sorted(zip(indices, sent, strict=True))
    expected = by_index[-WINDOW:]
    packed = [int(v) for v in store.lrange(KeyScheme().session("hot-1").window, 0, -1)]
    assert [((p >> 1) & 0xF, (p >> 5) / 1000) for p in packed] == [(ACTION_INDEX[a], t) for _, (a, t) in expected]
    assert calls / 200 <= 1.1, f"{calls} Redis round trips for 200 clicks"


def test_metrics_expose_every_series_after_traffic(client: httpx.Client) -> None:
    click(client, "m-1", "home", ts=T0 + 60, event_id="m-a")
    click(client, "m-1", "recommend", ts=T0, event_id="m-b")  # older ts: out of order; recommend: unseen
    click(client, "m-1", "home", ts=T0 + 60, event_id="m-a")  # duplicate
    text = client.get("/metrics").text
    for series in (
        'si_request_seconds_bucket{le="0.0005",method="POST",route="/v1/sessions/{session_id}/events",status="200"}',
        'si_stage_seconds_count{stage="redis"}', 'si_stage_seconds_count{stage="queue"}',
        'si_stage_seconds_count{stage="infer"}', "si_click_seconds_count", "si_in_flight", "si_admission_limit 64.0",
        "si_loop_lag_seconds", "si_batch_size_count", "si_queue_depth", "process_cpu_seconds_total",
        "process_resident_memory_bytes", "python_gc_collections_total", "python_info{",
        'si_events_total{action="recommend"}', 'si_unseen_action_events_total{action="recommend"}',
        "si_out_of_order_events_total", "si_duplicate_events_total", "si_model_info{",
    ):
        assert series in text, series
    assert 'si_unseen_action_events_total{action="home"}' not in text
    # The whole click is its own series, the stages hold only its parts; the duplicates of si_errors_total are gone.
    assert 'stage="total"' not in text and "si_shed_total" not in text and "si_timeouts_total" not in text
    redis_calls = metric_sample(text, 'si_stage_seconds_count{stage="redis"}')
    assert 1 <= metric_sample(text, "si_click_seconds_count") <= redis_calls
    assert metric_sample(text, "si_out_of_order_events_total") >= 1
    assert metric_sample(text, "si_duplicate_events_total") >= 1


def test_ops_probes(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["warmed"]


def test_openapi_documents_examples_and_the_model_running_read(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    event = spec["components"]["schemas"]["EventIn"]
    assert event["examples"][0]["action"] == "view_product"
    assert event["properties"]["action"]["enum"] == list(ACTIONS)
    explain = spec["paths"]["/v1/sessions/{session_id}/explain"]["get"]
    assert "RUNS THE MODEL" in explain["description"]



def stored(http: httpx.Client, session: str, event_index: int, timeout_s: float = 2.0) -> dict:
    """The session's scores once they cover `event_index` (this replica answers from its write-behind buffer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = http.get(f"/v1/sessions/{session}/risk")
        if answer.status_code == 200 and answer.json()["event_index"] >= event_index:
            return answer.json()
        time.sleep(0.005)
    raise AssertionError(f"scores of {session} event {event_index} not stored within {timeout_s}s")


def _batch_histogram(http: httpx.Client) -> dict[str, float]:
    text = http.get("/metrics").text
    return {"count": metric_sample(text, "si_batch_size_count"), "sum": metric_sample(text, "si_batch_size_sum")}


def test_every_setting_is_documented() -> None:
    documented = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [f"SI_{name.upper()}" for name in Settings.model_fields if f"SI_{name.upper()}" not in documented]
    assert not missing, f"settings missing from the README: {missing}"
